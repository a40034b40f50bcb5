"""Self-registration through the practice's link and QR code."""

from __future__ import annotations

import io
import re

import segno
from sqlalchemy import func, select

from smartpractice.storage.tables import memberships, practices, users
from tests.helpers import (
    FORM_TOKEN,
    add_member,
    confirm,
    english,
    log_in,
    mail_link,
    mail_settled,
    mail_text,
    post_form,
)

REGISTER_PATH = re.compile(r"http://localhost:8080(/register/[A-Za-z0-9_-]+)")
CHOSEN = "copper-lantern-meadow-41"
APPLICANT = {
    "display_name": "Jonas Weber",
    "email": "jonas@example.org",
    "username": "jonas",
    "password": CHOSEN,
    "password_repeat": CHOSEN,
    "consent": "yes",
}


async def registration_path(client, slug: str, user: str = "dr-berg") -> str:
    """As a staff member: open the practice's registration page and read its link."""
    await log_in(client, user)
    page = await client.get(f"/p/{slug}/registration")
    assert page.status == 200
    match = REGISTER_PATH.search(await page.text())
    assert match, await page.text()
    await post_form(client, "/logout", {})
    return match.group(1)


async def register(browser, path: str, **fields: str):
    """The form as a browser sends it: with the one-time token of the page it came from
    (none when the link no longer opens a form)."""
    token = FORM_TOKEN.search(await (await browser.get(path)).text())
    return await post_form(browser, path, {**APPLICANT, "form_token": token.group(1) if token else "", **fields})


async def count(engine, table, *where) -> int:
    async with engine.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(table).where(*where))


async def test_self_registration_end_to_end(client, other_browser, smtp, services, practice, clinician):
    path = await registration_path(client, practice.slug)
    english(other_browser)
    form = await other_browser.get(path)
    assert form.status == 200
    form_page = await form.text()
    assert "Praxis am Markt" in form_page and 'href="/privacy"' in form_page
    assert "date_of_birth" not in form_page

    done = await register(other_browser, path)
    assert done.status == 200
    assert "Please check your mail" in await done.text()
    mail = (await smtp.wait_for(1))[0]
    assert mail["To"] == "jonas@example.org"
    assert "Thank you for registering with Praxis am Markt" in mail_text(mail)
    assert CHOSEN not in mail_text(mail)

    refused = await log_in(other_browser, "jonas", CHOSEN)
    assert "Please confirm your email address first" in await refused.text()
    confirmed = await confirm(other_browser, mail_link(mail))
    assert "the password you chose" in await confirmed.text()
    assert (await log_in(other_browser, "jonas@example.org", CHOSEN)).status == 303
    home = await other_browser.get("/", allow_redirects=False)
    assert home.headers["Location"] == f"/p/{practice.slug}/"
    dashboard = await other_browser.get(home.headers["Location"])
    assert "You have no upcoming consultations with this practice." in await dashboard.text()


async def test_missing_consent_reshows_the_form_with_what_was_typed(client, smtp, engine, practice, clinician):
    path = await registration_path(client, practice.slug)
    english(client)
    response = await register(client, path, consent="")
    assert response.status == 400
    page = await response.text()
    assert "Please agree to the privacy terms to register." in page
    for value in ("Jonas Weber", "jonas@example.org", "jonas"):
        assert f'value="{value}"' in page
    assert CHOSEN not in page
    assert await count(engine, users, users.c.username == "jonas") == 0


async def test_bad_passwords_are_explained(client, practice, clinician):
    path = await registration_path(client, practice.slug)
    english(client)
    mismatch = await register(client, path, password_repeat=CHOSEN + "x")
    assert "The two passwords are not the same." in await mismatch.text()
    named = await register(client, path, password="markt-praxis-jonas-99", password_repeat="markt-praxis-jonas-99")
    assert "must not contain your name, user name, email address or the practice" in await named.text()
    short = await register(client, path, password="short", password_repeat="short")
    assert "at least 10 characters" in await short.text()


async def test_existing_address_gets_the_same_page_and_its_owner_a_notice(client, other_browser, smtp, services, app, engine, practice, clinician):
    other = await services.practices.create("Praxis am See", admin_email="see@example.org", admin_username="see-admin")
    anna = await add_member(app, other.practice, "patient", "anna")
    path = await registration_path(client, practice.slug)
    english(client)
    english(other_browser)
    users_before = await count(engine, users)

    fresh = await register(client, path)
    existing = await register(other_browser, path, email="Anna@Example.org", username="anna-neu", display_name="Anna Neu")
    assert fresh.status == existing.status == 200

    def visible(page: str) -> str:
        return re.sub(r'name="csrf_token" value="[^"]+"', "", page)

    assert visible(await fresh.text()) == visible(await existing.text())
    await smtp.wait_for(2)
    notice = smtp.to("anna@example.org")[0]
    assert "Someone tried to register with Praxis am Markt using your email address." in mail_text(notice)
    assert "log in with your user name anna" in mail_text(notice)
    assert mail_link(notice) == "/password-reset"
    assert await count(engine, users) == users_before + 1  # only jonas
    assert await count(engine, users, users.c.username == "anna-neu") == 0
    assert await count(engine, memberships, memberships.c.user_id == anna) == 1


async def test_taken_username_is_said_without_revealing_the_address(client, smtp, app, practice, clinician):
    await add_member(app, practice, "patient", "jonas")
    path = await registration_path(client, practice.slug)
    english(client)
    for email in ("jonas@example.org", "someone-new@example.org"):
        response = await register(client, path, email=email, username="Jonas")
        assert response.status == 400
        page = await response.text()
        assert "This user name is already taken." in page
        assert "email address" not in page.split('role="alert"')[1].split("</p>")[0]
    await mail_settled(client.app)
    assert smtp.messages == []


async def test_switched_off_registration_and_renewed_link_kill_old_links(client, app, engine, practice, clinician):
    await add_member(app, practice, "admin", "praxis-admin")
    old = await registration_path(client, practice.slug, "praxis-admin")
    await log_in(client, "praxis-admin")
    english(client)
    switched_off = await post_form(client, f"/p/{practice.slug}/registration", {"ask_date_of_birth": ""})
    assert switched_off.status == 303
    staff_page = await (await client.get(f"/p/{practice.slug}/registration")).text()
    assert "Self-registration is switched off." in staff_page
    closed = await client.get(old)
    assert closed.status == 404
    assert "This registration link is no longer valid" in await closed.text()
    assert (await register(client, old)).status == 404
    assert await count(engine, users, users.c.username == "jonas") == 0

    await post_form(client, f"/p/{practice.slug}/registration", {"enabled": "on"})
    assert (await client.get(old)).status == 200
    renewed = await post_form(client, f"/p/{practice.slug}/registration/renew", {})
    assert renewed.status == 303
    page = await (await client.get(renewed.headers["Location"])).text()
    assert "The old link and its QR code no longer work" in page
    new = REGISTER_PATH.search(page).group(1)
    assert new != old
    assert (await client.get(old)).status == 404
    assert (await client.get(new)).status == 200
    assert (await client.get("/register/no-such-code")).status == 404


async def test_only_admins_switch_registration_or_renew_the_link(client, engine, practice, clinician):
    path = await registration_path(client, practice.slug)
    await log_in(client, "dr-berg")
    assert "Make a new link" not in await (await client.get(f"/p/{practice.slug}/registration")).text()
    assert (await post_form(client, f"/p/{practice.slug}/registration", {})).status == 404
    assert (await post_form(client, f"/p/{practice.slug}/registration/renew", {})).status == 404
    async with engine.connect() as conn:
        row = (await conn.execute(select(practices).where(practices.c.id == practice.id))).one()
    assert row.self_registration and path.endswith(row.registration_code)


async def test_link_is_made_once_when_first_viewed(client, engine, practice, clinician):
    async with engine.connect() as conn:
        assert await conn.scalar(select(practices.c.registration_code).where(practices.c.id == practice.id)) is None
    first = await registration_path(client, practice.slug)
    assert first == await registration_path(client, practice.slug)
    assert len(first.rsplit("/", 1)[1]) == 16


async def test_qr_codes_hold_the_registration_link(client, practice, clinician):
    path = await registration_path(client, practice.slug)
    await log_in(client, "dr-berg")
    link = "http://localhost:8080" + path
    svg = await client.get(f"/p/{practice.slug}/registration/qr.svg")
    assert svg.status == 200 and svg.content_type == "image/svg+xml"
    body = await svg.text()
    assert body.lstrip().startswith("<svg") and body.rstrip().endswith("</svg>")
    png = await client.get(f"/p/{practice.slug}/registration/qr.png")
    assert png.status == 200 and png.content_type == "image/png"
    data = await png.read()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    # Drawing the expected link gives the same picture: the code holds exactly that link.
    expected = io.BytesIO()
    segno.make(link, error="m").save(expected, kind="png", scale=10, border=4)
    assert data == expected.getvalue()
    await post_form(client, "/logout", {})
    assert (await client.get(f"/p/{practice.slug}/registration/qr.png", allow_redirects=False)).status == 303


async def test_date_of_birth_is_asked_only_when_the_practice_wants_it(client, other_browser, app, engine, practice):
    await add_member(app, practice, "admin", "praxis-admin")
    path = await registration_path(client, practice.slug, "praxis-admin")
    english(other_browser)
    assert "date_of_birth" not in await (await other_browser.get(path)).text()
    await log_in(client, "praxis-admin")
    await post_form(client, f"/p/{practice.slug}/registration", {"enabled": "on", "ask_date_of_birth": "on"})
    assert 'name="date_of_birth"' in await (await other_browser.get(path)).text()

    for typed in ("", "1985-02-30", "31.12.1985", "2999-01-01", "1850-05-05"):
        response = await register(other_browser, path, date_of_birth=typed)
        assert response.status == 400, typed
        page = await response.text()
        assert "Please enter your date of birth as a valid date." in page
        assert 'value="Jonas Weber"' in page and f'value="{typed}"' in page
    assert (await register(other_browser, path, date_of_birth="1985-02-28")).status == 200
    async with engine.connect() as conn:
        born = await conn.scalar(select(users.c.date_of_birth).where(users.c.username == "jonas"))
    assert born.isoformat() == "1985-02-28"


async def test_registrations_are_limited_per_client_address(client, smtp, engine, practice, clinician):
    path = await registration_path(client, practice.slug)
    english(client)
    for number in range(10):
        response = await register(client, path, username=f"person-{number}", email=f"person-{number}@example.org")
        assert response.status == 200, number
    refused = await register(client, path, username="person-x", email="person-x@example.org")
    assert refused.status == 400
    assert "Too many registrations from your connection." in await refused.text()
    assert await count(engine, users, users.c.username == "person-x") == 0


async def test_registered_patient_cannot_reach_staff_pages(client, smtp, practice, clinician):
    path = await registration_path(client, practice.slug)
    await register(client, path)
    await confirm(client, mail_link((await smtp.wait_for(1))[0]))
    await log_in(client, "jonas", CHOSEN)
    for page in ("patients", "registration"):
        assert (await client.get(f"/p/{practice.slug}/{page}")).status == 404


async def test_the_form_sent_again_registers_once_and_mails_once(client, other_browser, smtp, engine, practice, clinician):
    """A reload of the answer page sends the same form again: the same page, not "user
    name taken", and no second account or mail. A taken name leaves the form usable."""
    path = await registration_path(client, practice.slug)
    english(other_browser)
    token = FORM_TOKEN.search(await (await other_browser.get(path)).text()).group(1)
    answers = [await register(other_browser, path, form_token=token) for _ in range(2)]
    for answer in answers:
        assert answer.status == 200 and "Please check your mail" in await answer.text()
    await mail_settled(client.app)
    assert len(smtp.to("jonas@example.org")) == 1 and len(smtp.messages) == 1
    assert await count(engine, users, users.c.username == "jonas") == 1

    fresh = FORM_TOKEN.search(await (await other_browser.get(path)).text()).group(1)
    taken = await register(other_browser, path, email="jonas.zwei@example.org", form_token=fresh)
    assert taken.status == 400 and "This user name is already taken." in await taken.text()
    again = await register(other_browser, path, email="jonas.zwei@example.org", username="jonas-zwei", form_token=fresh)
    assert again.status == 200 and await count(engine, users, users.c.username == "jonas-zwei") == 1
