"""Every route of the URL map, as each kind of visitor, with what people and scripts really
send wrong: form fields, query values and the text parts of paths missing, empty, far too
long, with a NUL or other control characters, numbers out of any range, impossible dates,
markup, given twice, bytes that are not UTF-8, a file where text belongs; JSON bodies of
the API broken or of the wrong types. None may answer 500 (or 503 "busy" on an idle
server): a bad input gets a form with its message or a 4xx, the API's with its error code."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import timedelta
from urllib.parse import quote

import aiohttp
from multidict import MultiDict
from yarl import URL

from smartpractice.keys import engine_key
from smartpractice.onboarding.invitations import Invitee
from smartpractice.scheduling.consultations import Appointment
from smartpractice.storage import users as user_store
from smartpractice.submissions import new_token
from smartpractice.web.api import consultations as api_consultations
from smartpractice.web.api import invitations as api_invitations
from smartpractice.web.api import patients as api_patients
from tests.helpers import add_member, csrf_token, log_in, route_paths, second_browser

# The names the templates give their fields (grep -o 'name="…"' templates/), and the
# list fields the pages' scripts add.
FIELDS = """csrf_token form_token username email code password current_password tan_delivery
language display_name confirm password_repeat name viewport treats_patients tan seats role
relay_policy practice_name next new_password_repeat new_password kind identifier contact
consent address to title time_zone time self_registration retention_days phone patient
new_email message max_seats max_participants join_window_minutes guest_name guest_language
guest_email from enabled duration day date_of_birth consultation_minutes ask_date_of_birth
admin_name action patients invitees e2ee_policy""".split()
HOSTILE = {
    "empty": "",
    "blank": "   \t ",
    "long": "Ä" * 1000,
    "control": "a\x00b\x01\x1b[2J",
    "negative": "-1",
    "huge": "9" * 40,
    "float": "1e309",
    "date": "2026-02-30",
    "time": "25:61",
    "markup": "<script>alert(1)</script>' OR 1=1; --",
    "emoji": "👩‍⚕️" * 40,
}
# Every name a page reads from its query (grep 'query.get(' smartpractice/).
QUERY = """action already changed code day deleted from joined kind lang next reset saved sent to view
who""".split()
# A logout ends the pass, the API has its own test below, a socket is no page.
LEFT_OUT = {"POST": re.compile(r"^/(logout|api/)"), "GET": re.compile(r"/ws$|^/(api|static)/")}


def routes(app, method: str, values: dict[str, str]) -> list[str]:
    return route_paths(app, method, values, LEFT_OUT[method])


def bodies(token: str):
    """(name, what aiohttp sends as the body) for every hostile form."""
    def form(value: str) -> dict:
        return {**dict.fromkeys(FIELDS, value), "csrf_token": token, "form_token": new_token()}

    yield "missing", {"csrf_token": token, "form_token": new_token()}
    for name, value in HOSTILE.items():
        yield name, form(value)
    twice = MultiDict(form("1"))
    for field in FIELDS[2:]:
        twice.add(field, "2")
    yield "twice", twice
    raw = "&".join(f"{field}=%FF%FE%C3" for field in FIELDS[2:])
    yield "not utf-8", aiohttp.BytesPayload(f"csrf_token={token}&{raw}".encode(),
                                            content_type="application/x-www-form-urlencoded")
    upload = aiohttp.FormData(form("1"))
    upload.add_field("display_name", b"\x89PNG\r\n", filename="bild.png", content_type="image/png")
    yield "file", upload


async def people_and_paths(app, services, clock, practice, clinician) -> dict[str, str]:
    """Erika (patient), Anna (admin), a colleague, an operator, and a consultation with an
    invitation: the values every route's path is filled with."""
    erika = await add_member(app, practice, "patient", "erika")
    await add_member(app, practice, "admin", "anna-admin")
    colleague = await add_member(app, practice, "clinician", "dr-zweit")
    operator = await add_member(app, practice, "clinician", "betrieb")
    async with app[engine_key].begin() as conn:
        await user_store.make_operator(conn, operator)
    key = await services.api_keys.create(practice, "Praxissoftware")
    admin = await services.users.by_login("anna-admin")
    staff_invitation = await services.staff_invitations.invite(practice, email="neu@example.org", role="admin",
                                                               inviter=admin)
    second = (await services.practices.create("Praxis Zwei", admin_email="z@example.org",
                                              admin_username="zwei")).practice
    plan = Appointment.parse("Kontrolle", clock.now() + timedelta(days=1), 20, now=clock.now())
    scheduled = await services.consultations.schedule(
        practice, clinician.user_id, plan, patient_ids=[erika], invitees=[Invitee.parse("gast@example.org", "Gabi Gast")])
    [invitation] = await services.invitations.list(practice.id)
    return {"slug": practice.slug, "user_id": str(erika), "id": str(scheduled.consultation.id),
            "id:invitations": str(invitation.id), "id:api-keys": str(key.key_id), "id:practices": str(second.id),
            "session_id": "999999", "token": "x" * 43, "code": "ABCD-EFGH",
            # Colleagues' pages take the colleague's id, the patients' pages Erika's.
            "colleague": str(colleague), "staff_invitation": str(staff_invitation)}


@contextlib.asynccontextmanager
async def everyone(client):
    """A browser for a visitor and for each kind of member, all logged in before anything
    else: the hostile logins that follow make this address wait."""
    async with contextlib.AsyncExitStack() as stack:
        browsers = {role: await stack.enter_async_context(second_browser(client))
                    for role in ("visitor", "erika", "dr-berg", "anna-admin", "betrieb")}
        for role, browser in browsers.items():
            if role != "visitor":
                assert (await log_in(browser, role)).status == 303, role
        yield browsers


async def test_no_sending_answers_500_whatever_the_form_holds(client, app, services, clock, practice, clinician):
    values = await people_and_paths(app, services, clock, practice, clinician)
    paths = [re.sub(r"/staff/invitations/\d+/", f"/staff/invitations/{values['staff_invitation']}/",
                    re.sub(r"/staff/\d+/", f"/staff/{values['colleague']}/", path))
             for path in routes(app, "POST", values)]
    assert len(paths) >= 45, paths

    failures, reached = [], set()
    async with everyone(client) as browsers:
        for role, browser in browsers.items():
            for path in paths:
                for name, body in bodies(await csrf_token(browser)):
                    answer = await browser.post(path, data=body, allow_redirects=False)
                    if answer.status >= 500:
                        failures.append(f"{role} {path} {name}: {answer.status}")
                    elif answer.status != 403:
                        reached.add(path)
            if role != "visitor":
                assert (await browser.get("/account", allow_redirects=False)).status == 200, f"{role} was logged out"
    assert failures == [], "\n".join(failures)
    # The forms got past the CSRF check: every sending was answered by its handler at least once.
    assert sorted(set(paths) - reached) == []


async def test_no_page_answers_500_whatever_its_query_holds(client, app, services, clock, practice, clinician):
    values = await people_and_paths(app, services, clock, practice, clinician)
    paths = routes(app, "GET", values)
    assert "/p/praxis-am-markt/audit.csv" in paths and len(paths) >= 60, paths
    queries = [(name, "&".join(f"{key}={quote(value)}" for key in QUERY)) for name, value in HOSTILE.items()]
    queries.append(("not utf-8", "&".join(f"{key}=%FF%FE" for key in QUERY)))
    queries.append(("twice", "&".join(f"{key}=1&{key}=2" for key in QUERY)))
    failures = []
    async with everyone(client) as browsers:
        for role, browser in browsers.items():
            for path in paths:
                for name, query in queries:
                    answer = await browser.get(URL(f"{path}?{query}", encoded=True), allow_redirects=False)
                    if answer.status >= 500:
                        failures.append(f"{role} {path} {name}: {answer.status}")
    assert failures == [], "\n".join(failures)


async def test_no_route_answers_500_whatever_its_path_holds(client, app, services, clock, practice, clinician):
    """The parts of a path that are text: a mail's token, a registration code, a practice's name."""
    values = await people_and_paths(app, services, clock, practice, clinician)
    failures = []
    async with everyone(client) as browsers:
        for bad in ("%00", "a%00b", "%FF", "x" * 3000, "%C3%84" * 300, "..%2F..", "%20"):
            for part in ("token", "code", "slug"):
                for method in ("GET", "POST"):
                    paths = [path for path in routes(app, method, {**values, part: bad}) if bad in path]
                    assert paths, (method, part)
                    for role, browser in browsers.items():
                        for path in paths:
                            answer = await browser.request(method, URL(path, encoded=True), allow_redirects=False,
                                                           data={"csrf_token": await csrf_token(browser)})
                            if answer.status >= 500:
                                failures.append(f"{role} {method} {path[:80]}: {answer.status}")
    assert failures == [], "\n".join(failures)


async def test_no_api_sending_answers_500_whatever_the_body_holds(client, app, services, clock, practice, clinician):
    values = await people_and_paths(app, services, clock, practice, clinician)
    headers = {"Authorization": f"Bearer {(await services.api_keys.create(practice, 'Praxissoftware')).key}",
               "Content-Type": "application/json"}
    consultation, invitation = values["id"], values["id:invitations"]
    # What takes a body must refuse each of these; what takes none (a revocation, a
    # cancellation) does its work and ignores it.
    taking = ["/api/v1/patients", "/api/v1/invitations", "/api/v1/consultations",
              f"/api/v1/consultations/{consultation}/participants"]
    ignoring = [f"/api/v1/invitations/{invitation}/revoke", f"/api/v1/consultations/{consultation}/cancel"]
    fields = [field.name for declared in (api_patients.FIELDS, api_invitations.FIELDS, api_consultations.FIELDS,
                                          api_consultations.PARTICIPANT_FIELDS) for field in declared]
    bodies = [b"", b"{", b"[]", b"null", b"1e999", b'"text"', b"\xff\xfe", b'{"a": ' * 2000]
    for value in ("", None, -1, 10**40, 1.5, True, [], {}, "Ä" * 5000, "a\x00b", "\ud800", ["\x00"]):
        bodies.append(json.dumps(dict.fromkeys(fields, value)).encode())
    failures = []
    for path in taking + ignoring:
        for body in bodies:
            answer = await client.post(path, data=body, headers=headers)
            if answer.status >= 500 or path in taking and (answer.status < 400 or "code" not in await answer.json()):
                failures.append(f"{path} {body[:40]!r}: {answer.status} {await answer.text()}")
    assert failures == [], "\n".join(failures)
