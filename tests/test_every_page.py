"""Every page of the URL map, opened as each kind of visitor in German and in English, and
every page that only a form's answer or a mail's link shows: none answers 500, none mixes
the languages (a German page showing one of the catalog's English sentences, or an English
page a German one), none shows UTC, and every template in templates/ was rendered."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from pathlib import Path

import pyotp
from babel.messages.pofile import read_po
from sqlalchemy import select

from smartpractice.app import create_app
from smartpractice.i18n import LOCALE_DIR
from smartpractice.keys import engine_key, services_key
from smartpractice.mail.compose import TEMPLATES as MAIL_TEMPLATES
from smartpractice.onboarding.guest_access import InvitationRef
from smartpractice.onboarding.invitations import Invitee
from smartpractice.onboarding.signup import PracticeApplication
from smartpractice.practices.offers import Enquiry
from smartpractice.scheduling.consultations import Appointment
from smartpractice.storage import practices as practice_store
from smartpractice.storage import second_factors as factor_store
from smartpractice.storage import users as user_store
from smartpractice.storage.tables import mails
from smartpractice.submissions import new_token
from smartpractice.web.responses import templates_key
from tests.helpers import (
    APPLICATION,
    FORM_TOKEN,
    PASSWORD,
    add_member,
    create_patient,
    form_token,
    log_in,
    mail_link,
    mail_settled,
    make_settings,
    post_form,
    route_paths,
    second_browser,
    send_signup,
    tan_in,
    totp_code,
)

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
NEW_PASSWORD = "copper-lantern-meadow-41"
# Not pages: sockets, files, machine-readable answers.
NOT_PAGES = re.compile(r"/ws$|\.(svg|png|csv|ics|json)$|^/(healthz|readyz|metrics|api/|static)")
OPTIONS = re.compile(r"<option.*?</option>", re.S)
TAGS = re.compile(r"<script.*?</script>|<style.*?</style>|<[^>]+>", re.S)


def sentences() -> tuple[list[str], list[str]]:
    """English msgids and their German texts of four words or more, without placeholders
    or markup: long enough that finding one on a page of the other language is no accident."""
    with (LOCALE_DIR / "de" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle)
    english, german = [], []
    for message in catalog:
        if not message.id or message.pluralizable or not message.string or message.id == message.string:
            continue
        if "%" in message.id or "<" in message.id or len(message.id.split()) < 4:
            continue
        english.append(message.id)
        german.append(message.string)
    return english, german


def visible_text(page: str) -> str:
    return " ".join(html.unescape(TAGS.sub(" ", page)).split())


def templates_rendered(app) -> set[str]:
    """From now on, the name of every template the app's pages render or include."""
    seen: set[str] = set()
    for environment in app[templates_key].values():
        def recording(name, *args, _get=environment.get_template, **kwargs):
            seen.add(getattr(name, "name", name))
            return _get(name, *args, **kwargs)

        environment.get_template = recording  # type: ignore[method-assign]
    return seen


def page_problems(who: str, language: str, page: str, foreign: list[str], *, patient: bool) -> list[str]:
    """One page: a sentence of the other language; for a patient or visitor a zone named,
    for anyone UTC."""
    text = visible_text(page)
    found = [f"{who} {language}: {sentence!r}" for sentence in foreign if sentence in text]
    if patient and (zones := ZONE_NAME.findall(text)):
        found.append(f"{who} {language}: {zones[:3]}")
    elif "UTC" in visible_text(OPTIONS.sub(" ", page)).split():  # a zone to choose is no time
        found.append(f"{who} {language}: UTC")
    return found


async def test_every_page_opens_for_everyone_in_one_language(client, app, services, clock, practice, clinician, smtp):
    rendered = templates_rendered(app)
    erika = await add_member(app, practice, "patient", "erika")
    await add_member(app, practice, "admin", "anna-admin")
    # Rows with times on the staff pages: an API key and a staff invitation.
    await services.api_keys.create(practice, "Praxissoftware")
    await services.staff_invitations.invite(practice, email="neu@example.org", role="admin",
                                            inviter=await services.users.by_login("anna-admin"))
    plan = Appointment.parse("Kontrolle", clock.now() + timedelta(days=1), 20, now=clock.now())
    scheduled = await services.consultations.schedule(
        practice, clinician.user_id, plan, patient_ids=[erika], invitees=[Invitee.parse("gast@example.org", "Gabi Gast")])
    [invitation] = await services.invitations.list(practice.id)
    consultation = str(scheduled.consultation.id)
    values = {"slug": practice.slug, "user_id": str(erika), "id": consultation, "id:invitations": str(invitation.id),
              "token": "x" * 43, "code": "ABCD-EFGH"}
    # The readable view of one's own data, besides its download.
    paths = route_paths(app, "GET", values, NOT_PAGES) + ["/account/data?view=page"]
    assert f"/p/{practice.slug}/consultations/{consultation}" in paths and "/invitation/" + "x" * 43 in paths
    english, german = sentences()
    # The check can see a language: the German privacy page holds German sentences, and
    # the English one the same sentences in English.
    for language, own in (("de", german), ("en", english)):
        privacy = visible_text(await (await client.get("/privacy", headers={"Accept-Language": language})).text())
        assert sum(sentence in privacy for sentence in own) >= 3, language

    failures = []
    for role in ("visitor", "erika", "dr-berg", "anna-admin"):
        async with second_browser(client) as browser:
            if role != "visitor":
                assert (await log_in(browser, role)).status == 303, role
            for language, foreign in (("de", english), ("en", german)):
                for path in paths:
                    answer = await browser.get(path, headers={"Accept-Language": language})
                    if answer.status >= 500:
                        failures.append(f"{role} {language} {path}: {answer.status}")
                        continue
                    if answer.content_type != "text/html":
                        continue
                    # A patient or a visitor reads local times as people say them; staff
                    # may see their practice's zone named, but no one reads UTC.
                    failures += page_problems(f"{role} {path}", language, await answer.text(), foreign,
                                              patient=role in ("visitor", "erika"))
    assert len(paths) >= 40, paths
    # The pages that answer a form or a mail's link, in each language.
    for language, foreign in (("de", english), ("en", german)):
        for who, page, patient in await answer_pages(client, services, clock, practice, clinician, smtp, language):
            failures += page_problems(who, language, page, foreign, patient=patient)
    assert failures == [], "\n".join(failures)
    every = {path.name for path in TEMPLATES.iterdir() if path.is_file()}
    assert sorted(every - rendered) == []


async def answer_pages(client, services, clock, practice, clinician, smtp, language: str):
    """(who, page, whether a patient or visitor reads it) for every page that only a form's
    answer or a mail's link shows, walked through as people do, in `language`."""
    app, shown = client.app, []

    async def read(who, answer, expected: int = 200, *, patient: bool = True):
        assert answer.status == expected, (who, answer.status, await answer.text())
        shown.append((who, await answer.text(), patient))

    async def link_to(address: str) -> str:
        await mail_settled(app)
        return mail_link(smtp.to(address)[-1])

    async with second_browser(client) as visitor:
        visitor.headers["Accept-Language"] = language
        # A practice signs up and its founder confirms the address.
        application = {**APPLICATION, "practice_name": f"Praxis Birke {language}", "username": f"birke-{language}",
                       "email": f"birke-{language}@example.org"}
        await read("signup done", await send_signup(visitor, application), patient=False)
        link = await link_to(f"birke-{language}@example.org")
        await read("confirm", await visitor.get(link))
        await read("confirm done", await post_form(visitor, link, {}))
        # A patient registers with the practice's code.
        await services.registrations.configure(practice, enabled=True, ask_date_of_birth=False,
                                               actor=clinician.user_id)
        path = "/register/" + (await services.registrations.options(practice)).code
        form = await visitor.get(path)
        token = FORM_TOKEN.search(await form.text()).group(1)
        await read("register", form)
        registration = {"display_name": "Jonas Jung", "email": f"jonas-{language}@example.org",
                        "username": f"jonas-{language}", "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD,
                        "consent": "yes", "form_token": token}
        await read("register done", await post_form(visitor, path, registration))
        # A forgotten password's link, a colleague's invitation, a guest's invitation.
        token = await form_token(visitor, "/password-reset")
        await post_form(visitor, "/password-reset", {"identifier": "erika", "form_token": token})
        await read("password reset", await visitor.get(await link_to("erika@example.org")))
        inviter = await services.users.by_login("dr-berg")
        await services.staff_invitations.invite(practice, email=f"neu-{language}@example.org", role="admin",
                                                inviter=inviter)
        await read("staff join", await visitor.get(await link_to(f"neu-{language}@example.org")), patient=False)
        await services.invitations.invite(practice, email=f"gast-{language}@example.org", display_name="Gabi Gast",
                                          invited_by=clinician.user_id, language=language)
        await mail_settled(app)
        message = smtp.to(f"gast-{language}@example.org")[-1]
        link = mail_link(message)
        await read("invitation", await visitor.get(link))
        entered = await post_form(visitor, link, {"tan": tan_in(message)})
        await read("guest", await visitor.get(entered.headers["Location"]))

    async with second_browser(client) as patient:
        patient.headers["Accept-Language"] = language
        username = f"berta-{language}"
        user_id = await add_member(app, practice, "patient", username)
        plan = Appointment.parse("Kontrolle", clock.now() + timedelta(days=1), 20, now=clock.now())
        cancelled = await services.consultations.schedule(practice, clinician.user_id, plan, patient_ids=[user_id])
        await services.consultations.cancel(practice, cancelled.consultation.id)
        assert (await log_in(patient, username)).status == 303
        await read("room closed", await patient.get(f"/c/{cancelled.consultation.id}"), 410)
        token = await form_token(patient, "/account")
        await post_form(patient, "/account/email", {"new_email": f"berta.neu-{language}@example.org",
                                                    "current_password": PASSWORD, "form_token": token})
        link = await link_to(f"berta.neu-{language}@example.org")
        await read("email change confirm", await patient.get(link))
        await read("email change done", await post_form(patient, link, {}))
        await read("account deleted", await post_form(patient, "/account/delete",
                                                      {"confirm": "yes", "current_password": PASSWORD}))

    async with second_browser(client) as staff:
        staff.headers["Accept-Language"] = language
        username = f"dr-neu-{language}"
        await add_member(app, practice, "clinician", username, second_factor=False)
        member = await services.users.by_login(username)
        assert (await post_form(staff, "/login", {"identifier": username, "password": PASSWORD})).status == 303
        await read("two-factor setup", await staff.get("/account/two-factor/setup"), patient=False)
        async with app[engine_key].connect() as conn:
            secret = (await factor_store.factor_of(conn, member.id)).pending_secret
        code = pyotp.TOTP(secret).at(clock.now())
        await read("two-factor codes", await post_form(staff, "/account/two-factor/setup", {"code": code}),
                   patient=False)
        await post_form(staff, "/logout", {})
        answer = await post_form(staff, "/login", {"identifier": "dr-berg", "password": PASSWORD})
        await read("second factor", await staff.get(answer.headers["Location"]), patient=False)
        await post_form(staff, "/login/second-factor", {"code": await totp_code(app, "dr-berg")})
        await read("patient created", await create_patient(staff, practice.slug, username=f"paul-{language}",
                                                           email=f"paul-{language}@example.org"), patient=False)

    async with second_browser(client) as operator:
        operator.headers["Accept-Language"] = language
        username = f"betrieb-{language}"
        user_id = await add_member(app, practice, "clinician", username)
        second = (await services.practices.create(f"Praxis Drei {language}", admin_email=f"d-{language}@example.org",
                                                  admin_username=f"drei-{language}")).practice
        async with app[engine_key].begin() as conn:
            await user_store.make_operator(conn, user_id)
            await practice_store.add_member(conn, practice_id=second.id, user_id=user_id, role="clinician",
                                            now=clock.now())
        assert (await log_in(operator, username)).status == 303
        await read("operator", await operator.get("/operator"), patient=False)
        await read("practices", await operator.get("/?changed=language"), patient=False)
    return shown


# Mails: what a person reads must not show the server's clock or the practice's zone by name.
ZONE_NAME = re.compile(r"\b(?:Africa|America|Antarctica|Asia|Atlantic|Australia|Europe|Indian|Pacific|Etc)/[A-Z][A-Za-z_]+|\bUTC\b|\bGMT\b|\+00:00|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
DOUBLE_SPACE = re.compile(r"\S {2,}\S")
LINK = re.compile(r"https?://\S+")


def mail_problems(kind: str, language: str, message, foreign: list[str]) -> list[str]:
    """What is wrong with one delivered mail: the other language, a zone or UTC, a double space."""
    subject = str(message["Subject"])
    text = message.get_body(preferencelist=("plain",)).get_content()
    page = visible_text(message.get_body(preferencelist=("html",)).get_content())
    found = []
    for part, content in (("subject", subject), ("text", text), ("html", page)):
        flat = " ".join(content.split())
        found += [f"{kind} {language} {part}: foreign {sentence!r}" for sentence in foreign if sentence in flat]
        found += [f"{kind} {language} {part}: {match!r}" for match in ZONE_NAME.findall(LINK.sub("", content))]
    # Text keeps its spaces (a subject, a line of the plain part): a name typed with two
    # spaces shows there as it was typed.
    for line in [subject, *text.splitlines()]:
        if DOUBLE_SPACE.search(line.strip()):
            found.append(f"{kind} {language}: double space in {line.strip()!r}")
    return found


async def test_every_mail_in_german_and_english(aiohttp_client, tmp_path, database_url, passwords, clock, smtp):
    """Every template in templates/mail/ delivered at least once in each language, through
    the services that send it, to people whose names were typed with double spaces."""
    settings = make_settings(tmp_path, database_url, OPERATOR_EMAIL="betrieb@example.org", SMTP_HOST="127.0.0.1",
                             SMTP_PORT=str(smtp.controller.port), SMTP_TLS="none", REMINDER_MINUTES="60")
    client = await aiohttp_client(create_app(settings, clock=clock, passwords=passwords))
    app, services = client.app, client.app[services_key]
    practice = (await services.practices.create("Praxis  am Markt", admin_email="chef@example.org",
                                                admin_username="chef")).practice
    doctor_id = await add_member(app, practice, "clinician", "dr-berg")
    async with app[engine_key].connect() as conn:
        admin = await user_store.user_by_login(conn, "chef")
    address = "127.0.0.1"
    patients, invitees, passwords_of = [], [], {}
    for language in ("de", "en"):
        created = await services.patients.create(
            practice, username=f"erika-{language}", email=f"erika-{language}@example.org",
            display_name="Dr.  Erika   Muster", password="", language=language)  # confirm_email
        patients.append(created.user_id)
        passwords_of[language] = created.generated_password
        invitees.append(Invitee.parse(f"gast-{language}@example.org", "Gabi  Gast", language))
        user = await services.users.by_login(f"erika-{language}")
        async with app[engine_key].begin() as conn:
            await services.users.notify_password_changed(conn, user)  # password_changed
            await services.second_factors.notify(conn, user, "second_factor_enrolled")  # credentials_changed
        await services.password_resets.request(f"erika-{language}", address=address)  # password_reset
        await services.mail_queue.enqueue_test(f"test-{language}@example.org", language)  # test
        await services.signups.sign_up(PracticeApplication(  # account_exists (to the known address)
            practice_name=f"Zweite  Praxis {language}", kind="single", address="Markt 1", contact="030 1234",
            admin_name="Erika  Muster", username=f"zweite-{language}", email=f"erika-{language}@example.org",
            password=PASSWORD, password_repeat=PASSWORD, consent=True, language=language, treats_patients=False), address=address)
        await services.users.set_language(admin.id, language)
        admin = await services.users.by_login("chef")
        await services.staff_invitations.invite(practice, email=f"kollege-{language}@example.org", role="admin",
                                                inviter=admin)  # staff_invitation
    await services.users.set_language(admin.id, "de")
    for language in ("de", "en"):
        await services.signups.sign_up(PracticeApplication(  # confirm_practice
            practice_name=f"Neue   Praxis {language}", kind="single", address="Markt 2", contact="030 5678",
            admin_name="Nina  Neu", username=f"nina-{language}", email=f"nina-{language}@example.org",
            password=PASSWORD, password_repeat=PASSWORD, consent=True, language=language, treats_patients=False),
            address=address)
    await services.offer_requests.submit(Enquiry(  # offer_request
        name="Olga  Offen", practice_name="Praxis  Offen", email="olga@example.org", phone="030 9", message="Hallo"),
        address=address)
    start = clock.now() + timedelta(days=3)
    plan = Appointment.parse("Kontrolle", start, 20, now=clock.now())
    scheduled = await services.consultations.schedule(  # consultation_scheduled, invitation
        practice, doctor_id, plan, patient_ids=patients, invitees=invitees)
    consultation = scheduled.consultation
    later = Appointment.parse("Kontrolle", start + timedelta(hours=2), 20, now=clock.now())
    await services.consultations.reschedule(practice, consultation.id, later)  # consultation_changed
    clock.advance(seconds=(later.starts_at - clock.now()).total_seconds() - 50 * 60)
    await services.reminders.send_due()  # consultation_reminder
    for invitation in await services.invitations.list(practice.id):  # invitation_tan
        await services.guest_access.send_new_tan(InvitationRef(invitation_id=invitation.id), address=address,
                                                 language=invitation.language, form_token=new_token())
    await services.consultations.cancel(practice, consultation.id)  # consultation_cancelled
    for language in ("de", "en"):  # email_change_requested, email_change_confirm, email_changed
        user = await services.users.by_login(f"erika-{language}")
        await services.email_changes.request(user, f"neu-{language}@example.org", passwords_of[language], "",
                                             address=address)
        await mail_settled(app)
        [confirming] = [m for m in smtp.messages if m["To"] == f"neu-{language}@example.org"]
        token = LINK.search(confirming.get_body(preferencelist=("plain",)).get_content()).group(0).rsplit("/", 1)[1]
        await services.email_changes.confirm(token, current_user_id=None, current_session_id=None)

    await mail_settled(app)
    async with app[engine_key].connect() as conn:
        kinds = {row.message_id: (row.kind, row.recipient) for row in await conn.execute(select(mails))}
    english, german = sentences()
    delivered: set[tuple[str, str]] = set()
    problems = []
    for message in smtp.messages:
        kind, recipient = kinds[str(message["Message-ID"])]
        language = "en" if "-en@" in recipient else "de"  # every English reader's address says so
        delivered.add((kind, language))
        problems += mail_problems(kind, language, message, english if language == "de" else german)
    templates = {path.stem for path in MAIL_TEMPLATES.glob("*.txt")} - {"base"}
    # The operator's offer requests go out in German only.
    expected = {(kind, language) for kind in templates for language in ("de", "en")} - {("offer_request", "en")}
    assert sorted(expected - delivered) == []
    assert problems == [], "\n".join(problems)
