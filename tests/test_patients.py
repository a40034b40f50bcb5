"""Patients created by the practice: confirmation by mail, initial password, tenant isolation."""

from __future__ import annotations

from sqlalchemy import func, select

from smartpractice.storage.tables import memberships
from tests.helpers import (
    GENERATED,
    PASSWORD,
    add_member,
    confirm,
    create_patient,
    english,
    form_token,
    generated_password,
    log_in,
    mail_link,
    mail_settled,
    mail_text,
    make_app,
    make_settings,
    new_initial_password,
    patient_id,
    post_form,
)

OWN_PASSWORD = "copper-lantern-meadow-41"


async def test_patient_confirms_by_mail_then_chooses_own_password(client, other_browser, smtp, practice, clinician):
    await log_in(client, "dr-berg")
    english(client)
    created = await create_patient(client, practice.slug)
    assert created.status == 200
    initial = await generated_password(created)
    page = await created.text()
    assert "Erika Mustermann has been sent a mail to erika@example.org" in page

    mail = (await smtp.wait_for(1))[0]
    assert mail["To"] == "erika@example.org"
    assert "Praxis am Markt has set up an account for video consultations for you." in mail_text(mail)
    assert "Your user name is: erika" in mail_text(mail)
    assert initial not in mail_text(mail)  # the password travels another way
    link = mail_link(mail)
    assert link.startswith("/confirm/")

    english(other_browser)
    refused = await log_in(other_browser, "erika", initial)
    assert refused.status == 401
    assert "Please confirm your email address first" in await refused.text()

    button = await other_browser.get(link)
    assert button.status == 200
    assert "Confirm email address" in await button.text()
    confirmed = await confirm(other_browser, link)
    assert confirmed.status == 200
    assert "you can log in now" in await confirmed.text()
    again = await post_form(other_browser, link, {})
    assert again.status == 410
    assert "This link has already been used." in await again.text()

    assert (await log_in(other_browser, "erika", initial)).status == 303
    gate = await other_browser.get(f"/p/{practice.slug}/", allow_redirects=False)
    assert gate.headers["Location"] == "/account/password"
    changed = await post_form(other_browser, "/account/password", {
        "current_password": initial, "new_password": OWN_PASSWORD, "new_password_repeat": OWN_PASSWORD,
    })
    assert changed.status == 303
    dashboard = await other_browser.get(f"/p/{practice.slug}/")
    assert dashboard.status == 200
    assert "You have no upcoming consultations with this practice." in await dashboard.text()


async def test_the_new_patient_form_sent_twice_makes_one_account_and_one_mail(client, engine, smtp, practice, clinician):
    """A reload or a double click of "Create account": the form's one-time token lets the
    first sending through; the second leads to the patient's page and sends nothing."""
    await log_in(client, "dr-berg")
    english(client)
    token = await form_token(client, f"/p/{practice.slug}/patients/new")
    first = await create_patient(client, practice.slug, form_token=token)
    assert first.status == 200
    await generated_password(first)
    again = await create_patient(client, practice.slug, form_token=token)
    erika = await patient_id(engine)
    assert again.status == 303
    assert again.headers["Location"] == f"/p/{practice.slug}/patients/{erika}"
    shown = await client.get(again.headers["Location"])
    assert shown.status == 200 and "Erika Mustermann" in await shown.text()
    await mail_settled(client.app)
    assert [m["To"] for m in smtp.messages] == ["erika@example.org"]
    async with engine.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(memberships)
                                   .where(memberships.c.user_id == erika))).scalar_one()
    assert rows == 1


async def test_wrong_password_of_unconfirmed_account_gets_the_usual_answer(client, other_browser, practice, clinician):
    await log_in(client, "dr-berg")
    await create_patient(client, practice.slug, password=OWN_PASSWORD)
    english(other_browser)
    wrong = await log_in(other_browser, "erika", "not-the-password-at-all")
    assert wrong.status == 401
    text = await wrong.text()
    assert "The user name, email address or password is wrong." in text
    assert "confirm" not in text


async def test_generated_password_is_shown_once(client, engine, practice, clinician):
    await log_in(client, "dr-berg")
    initial = await generated_password(await create_patient(client, practice.slug))
    listing = await (await client.get(f"/p/{practice.slug}/patients")).text()
    detail = await (await client.get(f"/p/{practice.slug}/patients/{await patient_id(engine)}")).text()
    assert "erika@example.org" in listing and "erika@example.org" in detail
    assert initial not in listing and initial not in detail


async def test_typed_initial_password_is_not_echoed(client, other_browser, smtp, practice, clinician):
    await log_in(client, "dr-berg")
    english(client)
    created = await create_patient(client, practice.slug, password=OWN_PASSWORD)
    assert created.status == 200
    page = await created.text()
    assert OWN_PASSWORD not in page and GENERATED.search(page) is None
    assert "Give the patient the initial password you typed." in page
    await confirm(other_browser, mail_link((await smtp.wait_for(1))[0]))
    assert (await log_in(other_browser, "erika", OWN_PASSWORD)).status == 303


async def test_weak_typed_password_reshows_the_form_with_what_was_typed(client, practice, clinician):
    await log_in(client, "dr-berg")
    english(client)
    response = await create_patient(client, practice.slug, password="erika-12345")
    assert response.status == 400
    page = await response.text()
    assert "The password must not contain your name" in page
    assert 'value="Erika Mustermann"' in page and 'value="erika@example.org"' in page


async def test_existing_username_or_email_is_refused_and_no_account_is_taken_over(client, services, app, engine, practice, clinician):
    other = await services.practices.create("Praxis am See", admin_email="see@example.org", admin_username="see-admin")
    await add_member(app, other.practice, "patient", "anna")
    await log_in(client, "dr-berg")
    english(client)
    by_email = await create_patient(client, practice.slug, email="ANNA@example.org")
    assert by_email.status == 400
    assert "An account with this email address already exists." in await by_email.text()
    by_name = await create_patient(client, practice.slug, username="Anna")
    assert by_name.status == 400
    assert "This user name is already taken." in await by_name.text()
    anna = await patient_id(engine, "anna")
    async with engine.connect() as conn:
        joined = await conn.scalar(select(func.count()).select_from(memberships).where(memberships.c.user_id == anna))
    assert joined == 1
    assert (await client.get(f"/p/{practice.slug}/patients/{anna}")).status == 404


async def test_list_shows_confirmation_and_initial_password_state(client, other_browser, smtp, clock, practice, clinician):
    await log_in(client, "dr-berg")
    english(client)
    await create_patient(client, practice.slug)
    await create_patient(client, practice.slug, display_name="Max Muster", email="max@example.org", username="max")
    links = {m["To"]: mail_link(m) for m in await smtp.wait_for(2)}
    await confirm(other_browser, links["max@example.org"])
    listing = await (await client.get(f"/p/{practice.slug}/patients")).text()
    rows = {name: listing[listing.index(name):].split("</tr>")[0] for name in ("Erika Mustermann", "Max Muster")}
    assert "waiting for confirmation" in rows["Erika Mustermann"]
    assert "waiting for confirmation" not in rows["Max Muster"] and "confirmed" in rows["Max Muster"]
    assert all("initial password pending" in row for row in rows.values())
    clock.advance(days=14, minutes=1)
    await log_in(client, "dr-berg")  # the staff session has long timed out
    listing = await (await client.get(f"/p/{practice.slug}/patients")).text()
    assert listing.count("initial password expired") == 2


async def test_initial_password_lifetime_comes_from_the_setting(aiohttp_client, tmp_path, database_url, clock, smtp, app, practice):
    settings = make_settings(
        tmp_path, database_url, INITIAL_PASSWORD_DAYS="3",
        SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp.controller.port), SMTP_TLS="none",
    )
    browser = await aiohttp_client(make_app(settings, clock=clock))
    await add_member(app, practice, "clinician", "dr-kurz")
    await log_in(browser, "dr-kurz")
    english(browser)
    created = await create_patient(browser, practice.slug)
    assert "expires in 3 days" in await created.text()
    initial = await generated_password(created)
    await post_form(browser, "/logout", {})
    await confirm(browser, mail_link((await smtp.wait_for(1))[0]))
    clock.advance(days=2, hours=23)
    assert (await log_in(browser, "erika", initial)).status == 303
    await post_form(browser, "/logout", {})
    clock.advance(hours=1, minutes=1)
    expired = await log_in(browser, "erika", initial)
    assert expired.status == 401
    assert "Your initial password has expired. Please ask your practice for a new one." in await expired.text()


async def test_expired_initial_password_is_replaced_by_the_practice(client, other_browser, smtp, clock, engine, practice, clinician):
    await log_in(client, "dr-berg")
    english(client)
    old = await generated_password(await create_patient(client, practice.slug))
    await confirm(other_browser, mail_link((await smtp.wait_for(1))[0]))
    clock.advance(days=15)
    english(other_browser)
    assert (await log_in(other_browser, "erika", old)).status == 401

    await log_in(client, "dr-berg")
    erika = await patient_id(engine)
    issued = await new_initial_password(client, practice, erika)
    assert issued.status == 200
    new = await generated_password(issued)
    assert new != old
    assert new not in await (await client.get(f"/p/{practice.slug}/patients/{erika}")).text()
    assert len(smtp.messages) == 1  # already confirmed: no second confirmation mail

    assert (await log_in(other_browser, "erika", old)).status == 401
    assert (await log_in(other_browser, "erika", new)).status == 303
    gate = await other_browser.get("/", allow_redirects=False)
    assert gate.headers["Location"] == "/account/password"


async def test_a_new_initial_password_sent_twice_makes_one_password_and_one_mail(client, other_browser, smtp, engine, practice, clinician):
    """A double click or a reload of "Issue a new initial password": the password shown on
    the first answer stays the valid one, one confirmation mail goes out again, and the second
    answer leads to the patient's page."""
    await log_in(client, "dr-berg")
    await create_patient(client, practice.slug)
    erika = await patient_id(engine)
    token = await form_token(client, f"/p/{practice.slug}/patients/{erika}")
    issued = await new_initial_password(client, practice, erika, token=token)
    assert issued.status == 200
    shown = await generated_password(issued)
    again = await new_initial_password(client, practice, erika, token=token)
    assert again.status == 303 and again.headers["Location"] == f"/p/{practice.slug}/patients/{erika}"
    await mail_settled(client.app)
    assert [m["To"] for m in smtp.messages] == ["erika@example.org"] * 2  # the account's, and one again
    await confirm(other_browser, mail_link(smtp.messages[1]))
    assert (await log_in(other_browser, "erika", shown)).status == 303


async def test_new_initial_password_ends_the_patients_sessions(client, other_browser, smtp, engine, practice, clinician):
    await log_in(client, "dr-berg")
    initial = await generated_password(await create_patient(client, practice.slug))
    await confirm(other_browser, mail_link((await smtp.wait_for(1))[0]))
    await log_in(other_browser, "erika", initial)
    assert (await other_browser.get("/account/password", allow_redirects=False)).status == 200
    await new_initial_password(client, practice, await patient_id(engine))
    after = await other_browser.get("/account/password", allow_redirects=False)
    assert after.status == 303
    assert after.headers["Location"].startswith("/login")


async def test_unconfirmed_patient_gets_a_fresh_confirmation_mail_with_the_new_password(client, other_browser, smtp, clock, engine, practice, clinician):
    await log_in(client, "dr-berg")
    await create_patient(client, practice.slug)
    first_link = mail_link((await smtp.wait_for(1))[0])
    clock.advance(days=3)
    await log_in(client, "dr-berg")
    issued = await new_initial_password(client, practice, await patient_id(engine))
    new = await generated_password(issued)
    second_link = mail_link((await smtp.wait_for(2))[1])
    assert second_link != first_link
    assert (await other_browser.get(first_link)).status == 410
    await confirm(other_browser, second_link)
    assert (await log_in(other_browser, "erika", new)).status == 303


async def test_no_new_initial_password_once_the_patient_chose_their_own(client, app, practice, clinician):
    erika = await add_member(app, practice, "patient", "erika")
    await log_in(client, "dr-berg")
    english(client)
    refused = await new_initial_password(client, practice, erika)
    assert refused.status == 400
    page = await refused.text()
    assert "This patient has already chosen their own password." in page
    assert GENERATED.search(page) is None
    await post_form(client, "/logout", {})
    assert (await log_in(client, "erika", PASSWORD)).status == 303


async def test_patient_of_another_practice_is_not_visible_or_reachable(client, services, app, practice, clinician):
    other = await services.practices.create("Praxis am See", admin_email="see@example.org", admin_username="see-admin")
    foreign = await add_member(app, other.practice, "patient", "seepatient")
    await log_in(client, "dr-berg")
    listing = await (await client.get(f"/p/{practice.slug}/patients")).text()
    assert "seepatient" not in listing
    assert (await client.get(f"/p/{practice.slug}/patients/{foreign}")).status == 404
    assert (await new_initial_password(client, practice, foreign)).status == 404
    assert (await client.get(f"/p/{other.practice.slug}/patients")).status == 404
    assert (await client.get(f"/p/{other.practice.slug}/patients/{foreign}")).status == 404
    assert (await create_patient(client, other.practice.slug)).status == 404
    assert (await client.get(f"/p/{practice.slug}/patients/not-a-number")).status == 404


async def test_patient_cannot_open_the_staff_pages(client, app, practice):
    erika = await add_member(app, practice, "patient", "erika")
    await log_in(client, "erika")
    for path in ("patients", "patients/new", f"patients/{erika}", "registration", "registration/qr.svg", "registration/qr.png"):
        assert (await client.get(f"/p/{practice.slug}/{path}")).status == 404, path
    assert (await create_patient(client, practice.slug, username="max", email="max@example.org")).status == 404
    assert (await new_initial_password(client, practice, erika)).status == 404
