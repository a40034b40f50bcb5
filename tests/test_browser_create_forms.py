"""Every form that creates something or sends a mail, in Chromium at desktop and phone size:
clicked twice while the first sending is still under way, then the page reloaded, it makes
one record and sends one mail to each person, and the page shown says what happened.

The consultation, invitation and add-participant forms are in test_browser_tan_path.py;
these are the others (the URL map's POST routes that make a record or a mail). A page that
is a form post's own answer (no redirect) is sent again by the reload: that is the
browser's resubmission of the same form, token and all."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import unused_port
from playwright.async_api import Error
from sqlalchemy import func, select

from smartpractice.i18n import Catalogs
from smartpractice.keys import engine_key, services_key
from smartpractice.onboarding.invitations import Invitee
from smartpractice.onboarding.registration import Applicant
from smartpractice.storage.tables import (
    api_keys,
    audit_log,
    link_tokens,
    offer_requests,
    practices,
    staff_invitations,
    users,
)
from tests.helpers import (
    DESKTOP,
    PASSWORD,
    PHONE,
    SlowLine,
    add_member,
    logged_in,
    mail_settled,
    mail_text,
    make_app,
    make_settings,
    needs_chromium,
    send_twice,
)

pytestmark = needs_chromium

GERMAN = Catalogs().get("de")
NEW_PASSWORD = "copper-lantern-meadow-41"
# How long a form's answer takes on the slow line (tests/helpers.py, SlowLine).
FORM_DELAY = 0.7


@pytest.fixture
async def forms_server(aiohttp_server, tmp_path, database_url, smtp):
    """The app on a real port with the real mail catcher, its form posts on a slow line
    (`line`): the second click comes after the first sending did its work, the browser
    drops the first answer and shows the second's."""
    port = unused_port()
    settings = make_settings(tmp_path, database_url, BASE_URL=f"http://127.0.0.1:{port}", SMTP_HOST="127.0.0.1",
                             SMTP_PORT=str(smtp.controller.port), SMTP_TLS="none",
                             OPERATOR_EMAIL="angebote@example.org")
    app = make_app(settings)
    line = SlowLine(FORM_DELAY, lambda path: not path.startswith(("/login", "/logout", "/c/")))
    app.middlewares.append(line.middleware)
    server = await aiohttp_server(app, port=port)
    server.line = line
    return server


async def count(server, table, *where) -> int:
    async with server.app[engine_key].connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one()


@dataclass
class Filled:
    """A form filled in and ready to send."""

    page: Any
    errors: list[str]
    action: str  # the path the form posts to
    submit: str  # its submit button
    done: str  # a selector the page shows once the sending went through
    records: Callable[[], Awaitable[int]]  # how many of what the form makes (or does) there are
    mails: dict[str, int]  # who gets how many mails from it
    # The page shown is a sending's own answer, so a reload sends the form again; None: the
    # first answer is such a page, the second a redirect, and a loaded browser may keep either.
    reposted: bool | None
    made: int = 1  # how many more `records` there are afterwards


def heading(msgid: str) -> str:
    return f"h1:text-is('{GERMAN.gettext(msgid)}')"


async def practice_with_staff(server):
    """Praxis Lindenhof with its admin Dr. Linde and the clinician Dr. Sommer, both with
    their authenticator app: (services, practice, Dr. Sommer's id, base URL)."""
    services = server.app[services_key]
    practice = (await services.practices.create("Praxis Lindenhof", admin_email="linde@example.org",
                                                admin_username="linde")).practice
    await add_member(server.app, practice, "admin", "dr-linde")
    doctor = await add_member(server.app, practice, "clinician", "dr-sommer")
    return services, practice, doctor, str(server.make_url("")).rstrip("/")


async def anonymous(browser, size):
    page = await (await browser.new_context(locale="de-DE", **size)).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page, errors


async def self_registration(server, browser, smtp, size) -> Filled:
    services, practice, admin, base = await practice_with_staff(server)
    await services.registrations.configure(practice, enabled=True, ask_date_of_birth=False, actor=admin)
    code = (await services.registrations.options(practice)).code
    page, errors = await anonymous(browser, size)
    await page.goto(f"{base}/register/{code}")
    await page.fill("#display_name", "Anna Albers")
    await page.fill("#email", "anna@example.org")
    await page.fill("#username", "anna")
    await page.fill("#password", NEW_PASSWORD)
    await page.fill("#password_repeat", NEW_PASSWORD)
    await page.check("input[name=consent]")
    return Filled(page, errors, f"/register/{code}", f"form[action='/register/{code}'] button[type=submit]",
                  heading("Please check your mail"), lambda: count(server, users, users.c.username == "anna"),
                  {"anna@example.org": 1}, reposted=True)


async def practice_signup(server, browser, smtp, size) -> Filled:
    page, errors = await anonymous(browser, size)
    await page.goto(str(server.make_url("/signup")))
    await page.fill("#practice_name", "Praxis am Markt")
    await page.select_option("#kind", index=1)
    await page.fill("#address", "Marktplatz 1, 12345 Musterstadt")
    await page.fill("#contact", "030 1234567")
    await page.fill("#admin_name", "Dr. Marta Markt")
    await page.check("#treats_patients_yes")
    await page.fill("#email", "marta@example.org")
    await page.fill("#username", "marta")
    await page.fill("#password", NEW_PASSWORD)
    await page.fill("#password_repeat", NEW_PASSWORD)
    await page.check("#consent")

    async def records() -> int:
        made = await count(server, practices, practices.c.name == "Praxis am Markt")
        assert made == await count(server, users, users.c.username == "marta")
        return made

    return Filled(page, errors, "/signup", "form[action='/signup'] button[type=submit]", heading("Almost done"),
                  records, {"marta@example.org": 1}, reposted=True)


async def patient_by_practice(server, browser, smtp, size) -> Filled:
    _, practice, _, base = await practice_with_staff(server)
    page, errors = await logged_in(browser, base, "dr-linde", server.app, device=size)
    await page.goto(f"{base}/p/{practice.slug}/patients/new")
    await page.fill("#display_name", "Paul Patient")
    await page.fill("#email", "paul@example.org")
    await page.fill("#username", "paul")
    action = f"/p/{practice.slug}/patients"
    # The second sending leads to the patient the first one made; a loaded browser may keep
    # the first's answer instead.
    return Filled(page, errors, action, f"form[action='{action}'] button[type=submit]",
                  f"{heading('Paul Patient')}, {heading('Patient account created')}",
                  lambda: count(server, users, users.c.username == "paul"), {"paul@example.org": 1}, reposted=None)


async def staff_invitation(server, browser, smtp, size) -> Filled:
    _, practice, _, base = await practice_with_staff(server)
    page, errors = await logged_in(browser, base, "dr-linde", server.app, device=size)
    await page.goto(f"{base}/p/{practice.slug}/staff")
    await page.fill("#email", "kollegin@example.org")
    await page.select_option("#role", "admin")  # a clinician would need a free seat
    action = f"/p/{practice.slug}/staff/invitations"
    return Filled(page, errors, action, f"form[action='{action}'] button[type=submit]", ".notice[role=status]",
                  lambda: count(server, staff_invitations), {"kollegin@example.org": 1}, reposted=False)


async def email_change(server, browser, smtp, size) -> Filled:
    _, practice, _, base = await practice_with_staff(server)
    await add_member(server.app, practice, "patient", "berta")
    page, errors = await logged_in(browser, base, "berta", device=size)
    await page.goto(f"{base}/account")
    await page.fill("#new_email", "berta.neu@example.org")
    await page.fill("#email_current_password", PASSWORD)
    # One link to the new address, one notice to the old one.
    return Filled(page, errors, "/account/email", "form[action='/account/email'] button[type=submit]",
                  heading("Check your inbox"), lambda: count(server, link_tokens, link_tokens.c.purpose == "change_email"),
                  {"berta.neu@example.org": 1, "berta@example.org": 1}, reposted=False)


async def password_reset(server, browser, smtp, size) -> Filled:
    _, practice, _, base = await practice_with_staff(server)
    await add_member(server.app, practice, "patient", "berta")
    page, errors = await anonymous(browser, size)
    await page.goto(f"{base}/password-reset")
    await page.fill("#identifier", "berta")
    return Filled(page, errors, "/password-reset", "form[action='/password-reset'] button[type=submit]",
                  ".notice[role=status]", lambda: count(server, link_tokens, link_tokens.c.purpose == "reset_password"),
                  {"berta@example.org": 1}, reposted=True)


async def confirmation_resend(server, browser, smtp, size) -> Filled:
    services, practice, admin, base = await practice_with_staff(server)
    await services.registrations.configure(practice, enabled=True, ask_date_of_birth=False, actor=admin)
    # Anna registered, and her confirmation mail went astray.
    applicant = Applicant(display_name="Anna Albers", email="anna@example.org", username="anna",
                          password=NEW_PASSWORD, password_repeat=NEW_PASSWORD, date_of_birth="", consent=True,
                          language="de")
    await services.registrations.register((await services.registrations.options(practice)).code, applicant,
                                          address="127.0.0.1")
    page, errors = await anonymous(browser, size)
    await page.goto(f"{base}/confirm")
    await page.fill("#email", "anna@example.org")

    async def records() -> int:
        return await count(server, link_tokens, link_tokens.c.purpose == "confirm_email", link_tokens.c.used_at.is_(None))

    # The new link replaces the old one: still one.
    return Filled(page, errors, "/confirm", "form[action='/confirm'] button[type=submit]", ".notice[role=status]",
                  records, {"anna@example.org": 1}, reposted=True, made=0)


async def offer_request(server, browser, smtp, size) -> Filled:
    page, errors = await anonymous(browser, size)
    await page.goto(str(server.make_url("/contact")))
    await page.fill("#name", "Dr. Otto Offer")
    await page.fill("#practice_name", "Praxis Offer")
    await page.fill("#email", "otto@example.org")
    return Filled(page, errors, "/contact", "form[action='/contact'] button[type=submit]", ".notice[role=status]",
                  lambda: count(server, offer_requests), {"angebote@example.org": 1}, reposted=True)


async def api_key(server, browser, smtp, size) -> Filled:
    _, practice, _, base = await practice_with_staff(server)
    page, errors = await logged_in(browser, base, "dr-linde", server.app, device=size)
    await page.goto(f"{base}/p/{practice.slug}/api-keys")
    await page.fill("#name", "Praxissoftware")
    action = f"/p/{practice.slug}/api-keys"
    # The key was shown on the first answer only; the second says it was made.
    return Filled(page, errors, action, f"form[action='{action}'] button[type=submit]", ".notice[role=status]",
                  lambda: count(server, api_keys), {}, reposted=False)


async def invitation_reissue(server, browser, smtp, size) -> Filled:
    services, practice, doctor, base = await practice_with_staff(server)
    await services.consultations.invite_now(practice, doctor, Invitee.parse("gabi@example.org", "Gabi Gast"))
    page, errors = await logged_in(browser, base, "dr-sommer", server.app, device=size)
    await page.goto(f"{base}/p/{practice.slug}/invitations")
    [invitation] = await services.invitations.list(practice.id)
    action = f"/p/{practice.slug}/invitations/{invitation.id}/reissue"
    return Filled(page, errors, action, f"form[action='{action}'] button[type=submit]", "#sent[data-invitation]",
                  lambda: count(server, audit_log, audit_log.c.action == "invitation_reissued"),
                  {"gabi@example.org": 1}, reposted=False)


async def new_tan_for_the_guest(server, browser, smtp, size) -> Filled:
    services, practice, doctor, base = await practice_with_staff(server)
    await services.consultations.invite_now(practice, doctor, Invitee.parse("gabi@example.org", "Gabi Gast"))
    [message] = await smtp.wait_for(1)
    link = re.search(r"(http://127\.0\.0\.1:\d+/invitation/\S+)", mail_text(message)).group(1)
    page, errors = await anonymous(browser, size)
    await page.goto(link)
    action = link.removeprefix(base) + "/new-tan"
    return Filled(page, errors, action, "#new-tan button[type=submit]", "#sent",
                  lambda: count(server, audit_log, audit_log.c.action == "invitation_tan_sent"),
                  {"gabi@example.org": 1}, reposted=False)


async def initial_password(server, browser, smtp, size) -> Filled:
    services, practice, doctor, base = await practice_with_staff(server)
    created = await services.patients.create(practice, username="berta", email="berta@example.org",
                                             display_name="Berta Beispiel", password="", language="de", actor=doctor)
    page, errors = await logged_in(browser, base, "dr-linde", server.app, device=size)
    await page.goto(f"{base}/p/{practice.slug}/patients/{created.user_id}")
    action = f"/p/{practice.slug}/patients/{created.user_id}/initial-password"
    return Filled(page, errors, action, f"form[action='{action}'] button[type=submit]", heading("Berta Beispiel"),
                  lambda: count(server, audit_log, audit_log.c.action == "patient_initial_password_issued"),
                  {"berta@example.org": 1}, reposted=None)


async def joining_the_practice(server, browser, smtp, size) -> Filled:
    services, practice, _, base = await practice_with_staff(server)
    inviter = await services.users.by_login("dr-linde")
    await services.staff_invitations.invite(practice, email="kollegin@example.org", role="admin", inviter=inviter)
    [message] = await smtp.wait_for(1)
    link = re.search(r"(http://127\.0\.0\.1:\d+/staff-invitation/\S+)", mail_text(message)).group(1)
    page, errors = await anonymous(browser, size)
    await page.goto(link)
    await page.fill("#display_name", "Dr. Klara Kollegin")
    await page.fill("#username", "klara")
    await page.fill("#password", NEW_PASSWORD)
    await page.fill("#password_repeat", NEW_PASSWORD)
    action = link.removeprefix(base)
    # Where the browser dropped the first sending's answer (and session), the second leads to
    # the login; on a loaded machine Chromium may keep the first's (logged in, the app's set-up).
    return Filled(page, errors, action, f"form[action='{action}'] button[type=submit]", "#joined, #totp-secret",
                  lambda: count(server, users, users.c.username == "klara"), {}, reposted=False)


FORMS: dict[str, Callable[..., Awaitable[Filled]]] = {
    "self-registration": self_registration,
    "practice-signup": practice_signup,
    "patient-by-practice": patient_by_practice,
    "staff-invitation": staff_invitation,
    "joining-the-practice": joining_the_practice,
    "email-change": email_change,
    "password-reset": password_reset,
    "confirmation-resend": confirmation_resend,
    "offer-request": offer_request,
    "api-key": api_key,
    "invitation-reissue": invitation_reissue,
    "guest-new-tan": new_tan_for_the_guest,
    "initial-password": initial_password,
}


async def shows(page, selector: str) -> None:
    """Until the page shows `selector`; if it never does, what it shows instead."""
    try:
        await page.wait_for_selector(selector)
    except Error:
        raise AssertionError(f"{page.url} does not show {selector}: {await page.inner_text('body')}") from None


async def until_replaced(page) -> None:
    """Until the page shows a new document (the answer of a sending) and it has loaded."""
    async with asyncio.timeout(15):
        while True:
            try:
                if await page.evaluate("window.sentFrom === undefined"):
                    break
            except Error:  # the old document went away while asked
                pass
            await asyncio.sleep(0.1)
    await page.wait_for_load_state("load")


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("form", list(FORMS), ids=list(FORMS))
async def test_double_click_and_reload_make_one_record_and_one_mail(forms_server, browser, smtp, form, size):
    filled = await FORMS[form](forms_server, browser, smtp, size)
    await mail_settled(forms_server.app)
    mails_before, records_before = Counter(message["To"] for message in smtp.messages), await filled.records()
    forms_server.line.posts.clear()

    await filled.page.evaluate("window.sentFrom = location.href")
    await send_twice(filled.page, filled.submit, forms_server.line)
    await until_replaced(filled.page)
    await shows(filled.page, filled.done)
    assert forms_server.line.posts == [filled.action] * 2
    assert await filled.page.locator(".error").count() == 0, await filled.page.inner_text("main")
    # The reload sends the form again where the page is a sending's own answer.
    await filled.page.reload()
    await shows(filled.page, filled.done)
    assert len(forms_server.line.posts) in {True: {3}, False: {2}, None: {2, 3}}[filled.reposted]
    assert set(forms_server.line.posts) == {filled.action}
    assert await filled.page.locator(".error").count() == 0, await filled.page.inner_text("main")

    assert await filled.records() - records_before == filled.made
    await mail_settled(forms_server.app)
    sent = Counter(message["To"] for message in smtp.messages) - mails_before
    assert dict(sent) == filled.mails, [(m["To"], m["Subject"]) for m in smtp.messages]
    assert filled.errors == []
