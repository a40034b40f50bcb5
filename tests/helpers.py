"""What several test modules share: the app as tests build it, forms and logging in,
members and their second factor, mail, patients, sockets, the CLI and browsers.
Fixtures live in conftest.py and build on these."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import aiohttp
import argon2
import pyotp
import pytest
from aiohttp import ClientSession, CookieJar, web
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from yarl import URL

from smartpractice.accounts.passwords import Passwords
from smartpractice.app import create_app
from smartpractice.cli import main
from smartpractice.clock import Clock
from smartpractice.config import Settings
from smartpractice.keys import clock_key, engine_key, mail_sender_key, services_key
from smartpractice.scheduling.consultations import Appointment
from smartpractice.storage import practices as practice_store
from smartpractice.storage import second_factors as factor_store
from smartpractice.storage import users as user_store
from smartpractice.storage.practices import Practice
from smartpractice.storage.tables import metadata, practices, users

PASSWORD = "amber-violin-harbour-77"
# Who runs the service, as `serve` needs it outside demo mode.
OPERATOR = {
    "SMARTPRACTICE_OPERATOR_NAME": "Videodienst Beispiel GmbH, vertreten durch Erika Beispiel",
    "SMARTPRACTICE_OPERATOR_ADDRESS": "Beispielweg 1, 12345 Berlin",
    "SMARTPRACTICE_OPERATOR_CONTACT": "info@videodienst.example, 030 1234567",
}
# The sign-up form of a practice as its founder fills it in.
APPLICATION = {
    "practice_name": "Hausarztpraxis Birke", "kind": "group", "address": "Birkenweg 3, 12345 Musterstadt",
    "contact": "030 555 0101", "admin_name": "Dr. Birke", "username": "dr-birke", "email": "birke@example.org",
    "password": "Kiefernzapfen-Wanderweg-Nebel", "password_repeat": "Kiefernzapfen-Wanderweg-Nebel",
    "consent": "yes", "treats_patients": "no",
}
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


# The app

def make_settings(tmp_path, database_url: str, **overrides: str) -> Settings:
    values = {
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": database_url,
        "AUTO_MIGRATE": "never",
        "SECRET_KEY": "test-secret-" + "x" * 40,
        # The server's own purge would race tests that look at expired rows on purpose;
        # tests of the schedule turn it on.
        "PURGE_INTERVAL_MINUTES": "0",
        # Tests drive reminders themselves; the server's schedule has its own test.
        "HOUSEKEEPING_SECONDS": "0",
    }
    values.update(overrides)
    return Settings.from_env({}, **values)


def cheap_passwords() -> Passwords:
    """Real argon2id at the smallest cost argon2 allows: a hash takes microseconds, not
    the production second (test_passwords checks the production parameters)."""
    return Passwords(concurrency=2, hasher=argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def make_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    """The application as tests run it: the given clock, cheap password hashing."""
    return create_app(settings, clock=clock, passwords=cheap_passwords())


# Browsers without JavaScript: forms and logging in

# Which app a plain ClientSession talks to, so log_in can find the TOTP secrets behind it.
_APP_OF_SESSION: dict[int, web.Application] = {}


def second_browser(client: TestClient) -> contextlib.AbstractAsyncContextManager[ClientSession]:
    """A second browser, with its own cookies, talking to the same running server."""
    return browser_at(str(client.make_url("/")), client.app)


@contextlib.asynccontextmanager
async def browser_at(base_url: str, app: web.Application) -> AsyncIterator[ClientSession]:
    """A browser of a server at `base_url` (another process, too) whose database `app` shares."""
    jar = CookieJar(unsafe=True)
    headers = {"User-Agent": "Tablet-Browser/1.0"}
    async with ClientSession(base_url=base_url, cookie_jar=jar, headers=headers) as session:
        _APP_OF_SESSION[id(session)] = app
        try:
            yield session
        finally:
            del _APP_OF_SESSION[id(session)]


def route_paths(app: web.Application, method: str, values: dict[str, str], left_out: re.Pattern) -> list[str]:
    """The paths of the URL map's `method` routes but those `left_out` matches, their parts
    filled in from `values`. An {id} takes the id of the noun before it (`id:invitations`
    for /invitations/{id}/revoke), or `values["id"]`."""
    paths = []
    for resource in app.router.resources():
        if not any(route.method == method for route in resource):
            continue
        template = re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: "{" + m.group(1) + "}", resource.canonical)
        if left_out.search(template):
            continue
        key = match.group(1) if (match := re.search(r"/([\w-]+)/\{id\}", template)) else ""
        filled = template.replace("{id}", values.get(f"id:{key}", values["id"]))
        for name, value in values.items():
            filled = filled.replace("{" + name + "}", value)
        paths.append(filled)
    return sorted(paths)


def app_of(client: TestClient | ClientSession) -> web.Application:
    return client.app if isinstance(client, TestClient) else _APP_OF_SESSION[id(client)]


def english(browser: TestClient | ClientSession) -> None:
    """From now on the browser asks for English pages."""
    (browser.session if hasattr(browser, "session") else browser).headers["Accept-Language"] = "en"


async def csrf_token(client: TestClient, path: str = "/privacy") -> str:
    page = await client.get(path)
    match = CSRF_FIELD.search(await page.text())
    assert match, f"no CSRF token on {path}"
    return match.group(1)


async def post_form(client: TestClient, path: str, data: dict, **kwargs):
    token = await csrf_token(client)
    return await client.post(path, data={**data, "csrf_token": token}, allow_redirects=False, **kwargs)


async def log_in(client: TestClient, identifier: str, password: str = PASSWORD):
    """Log in with the password and, for staff, the second factor as their app would give it."""
    response = await post_form(client, "/login", {"identifier": identifier, "password": password})
    location = response.headers.get("Location", "")
    if response.status == 303 and location.startswith("/login/second-factor"):
        code = await totp_code(app_of(client), identifier)
        target = URL(location).query.get("next", "")
        response = await post_form(client, "/login/second-factor", {"code": code, "next": target})
    return response


# Members and their second factor

@dataclass
class Member:
    username: str
    password: str
    user_id: int


async def add_member(
    app: web.Application, practice: Practice, role: str, username: str, password: str = PASSWORD, *,
    second_factor: bool = True,
) -> int:
    """A member who has already chosen their own password (and, staff, set up their app)."""
    services = app[services_key]
    async with app[engine_key].begin() as conn:
        user_id = await services.users.create_with_initial_password(
            conn,
            username=username,
            email=f"{username}@example.org",
            display_name=username.replace("-", " ").title(),
            password="initial-" + PASSWORD,
            staff=role != "patient",
        )
        now = services.clock.now()
        await user_store.set_password(conn, user_id, await services.passwords.hash(password), now=now)
        await practice_store.add_member(conn, practice_id=practice.id, user_id=user_id, role=role, now=now)
    if role != "patient" and second_factor:
        await enrol_second_factor(app, user_id)
    return user_id


async def enrol_second_factor(app: web.Application, user_id: int) -> str:
    """Give a user a TOTP secret, as if they had set up their app; returns the secret."""
    secret = pyotp.random_base32()
    async with app[engine_key].begin() as conn:
        await factor_store.set_pending(conn, user_id, secret)
        await factor_store.activate_pending(conn, user_id, now=app[clock_key].now(), step=0)
    return secret


async def totp_code(app: web.Application, identifier: str) -> str:
    """A code the server will accept now for this user, as their app would show it.

    A code is accepted once; when the steps around "now" are used up (logging in twice
    within a test), the test's frozen clock moves on by one step. The current step comes
    first and the previous one last: on the real clock the server checks a moment later,
    and a code of the previous step fails when a 30-second boundary falls in between.
    """
    clock = app[clock_key]
    async with app[engine_key].connect() as conn:
        user = await user_store.user_by_login(conn, identifier)
        assert user is not None, identifier
        factor = await factor_store.factor_of(conn, user.id)
    assert factor is not None and factor.secret is not None, f"{identifier} has no second factor"
    totp = pyotp.TOTP(factor.secret)
    while True:
        current = totp.timecode(clock.now())
        for step in (current, current + 1, current - 1):
            if factor.last_used_step is None or step > factor.last_used_step:
                return totp.generate_otp(step)
        clock.advance(seconds=30)


# Mail

class _AnyPortController(Controller):
    """aiosmtpd on a port the kernel chooses as it binds: a port picked free beforehand
    (`unused_port`) can be taken by another process on the machine before the bind."""

    def _trigger_server(self):
        # Called once the server listens, before anything reads `port`.
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        return super()._trigger_server()


class MailCatcher:
    """A real SMTP server in the test process (aiosmtpd); tests read what it received."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse = False
        self.refusal = "451 4.3.0 try again later"  # a 5xx refuses for good
        # aiosmtpd's 5 s to start can run out on a loaded machine; it warns of as much.
        self.controller = _AnyPortController(self, hostname="127.0.0.1", port=0, ready_timeout=30)
        # A slow server: seconds before it answers the data, and QUIT. A client that hangs
        # up first cancels the answer (aiosmtpd), and the mail was not taken.
        self.data_pause = 0.0
        self.quit_pause = 0.0
        self.data_received = 0
        self.data_abandoned = 0  # the client hung up before the answer

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.data_received += 1
        try:
            await asyncio.sleep(self.data_pause)
        except asyncio.CancelledError:
            self.data_abandoned += 1
            raise
        if self.refuse:
            return self.refusal
        # aiosmtpd runs in its own thread; list.append is atomic, and tests poll.
        self.messages.append(BytesParser(policy=policy.default).parsebytes(envelope.content))
        return "250 OK"

    async def handle_QUIT(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        await asyncio.sleep(self.quit_pause)
        return "221 Bye"

    async def wait_for(self, count: int, within: float = 10.0) -> list[EmailMessage]:
        async with asyncio.timeout(within):
            while len(self.messages) < count:  # noqa: ASYNC110 - appended from aiosmtpd's thread
                await asyncio.sleep(0.02)
        return self.messages

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


async def mail_settled(app: web.Application, within: float = 10.0) -> None:
    """Wait until the app's mail sender has looked at the outbox since this call and found
    nothing due: what the test did has been sent, or was never going to be."""
    async with asyncio.timeout(within):
        await app[mail_sender_key].wait_idle()


def mail_text(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def mail_link(message: EmailMessage) -> str:
    """The first link into this service in a mail's text part, made relative."""
    match = re.search(r"http://localhost:8080(/\S+)", mail_text(message))
    assert match, mail_text(message)
    return match.group(1)


# Patients created by the practice

GENERATED = re.compile(r"<code>([a-z2-9]{4}(?:-[a-z2-9]{4}){3})</code>")
PATIENT = {"display_name": "Erika Mustermann", "email": "erika@example.org", "username": "erika", "language": "en"}


async def create_patient(client, slug: str, password: str = "", **fields: str):
    """As a logged-in staff member: fill in the new-patient form; returns the result page."""
    token = fields.pop("form_token", None)
    if token is None:
        # A client barred from the form gets no token; its POST must be refused all the same.
        match = FORM_TOKEN.search(await (await client.get(f"/p/{slug}/patients/new")).text())
        token = match.group(1) if match else "t" * 22
    return await post_form(client, f"/p/{slug}/patients", {**PATIENT, **fields, "password": password, "form_token": token})


async def generated_password(response) -> str:
    match = GENERATED.search(await response.text())
    assert match, await response.text()
    return match.group(1)


async def patient_id(engine: AsyncEngine, username: str = "erika") -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(users.c.id).where(users.c.username == username))).scalar_one()


async def confirm(browser, link: str):
    page = await browser.get(link)
    assert page.status == 200
    return await post_form(browser, link, {})


# TAN invitations

FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')


def tan_in(message) -> str:
    match = re.search(r"\b(\d{4} \d{4})\b", mail_text(message))
    assert match, mail_text(message)
    return match.group(1)


def code_in(message) -> str:
    match = re.search(r"\b([A-Z2-9]{4}-[A-Z2-9]{4})\b", mail_text(message))
    assert match, mail_text(message)
    return match.group(1)


async def form_token(client, path: str) -> str:
    """The one-time token of the form on `path`, as a browser gets it with the page."""
    match = FORM_TOKEN.search(await (await client.get(path)).text())
    assert match, f"no form token on {path}"
    return match.group(1)


async def invite(client, practice, email="gast@example.org", name="Gabi Gast", *, token: str | None = None):
    token = token or await form_token(client, f"/p/{practice.slug}/invitations")
    return await post_form(client, f"/p/{practice.slug}/invitations",
                           {"email": email, "display_name": name, "language": "de", "form_token": token})


async def invite_staff(client, practice, email: str, role: str = "clinician", *, token: str | None = None, **kwargs):
    """As a logged-in admin: send the staff page's invite form."""
    token = token or await form_token(client, f"/p/{practice.slug}/staff")
    return await post_form(client, f"/p/{practice.slug}/staff/invitations",
                           {"email": email, "role": role, "form_token": token}, **kwargs)


async def create_api_key(client, practice, name: str, *, token: str | None = None, **kwargs):
    """As a logged-in admin: send the API keys page's form."""
    token = token or await form_token(client, f"/p/{practice.slug}/api-keys")
    return await post_form(client, f"/p/{practice.slug}/api-keys", {"name": name, "form_token": token}, **kwargs)


async def send_enquiry(client, enquiry: dict, *, token: str | None = None, **kwargs):
    """The public contact form, as a browser sends it."""
    token = token or await form_token(client, "/contact")
    return await post_form(client, "/contact", {**enquiry, "form_token": token}, **kwargs)


async def reissue(client, practice, invitation_id: int, *, token: str | None = None, **kwargs):
    """As logged-in staff: "Send again with a new TAN" on the invitations page."""
    token = token or await form_token(client, f"/p/{practice.slug}/invitations")
    return await post_form(client, f"/p/{practice.slug}/invitations/{invitation_id}/reissue",
                           {"form_token": token}, **kwargs)


async def new_initial_password(client, practice, user_id: int, *, token: str | None = None, **kwargs):
    """As logged-in staff: "Issue a new initial password" on the patient's page."""
    if token is None:
        # A client barred from the page gets no token; its POST must be refused all the same.
        match = FORM_TOKEN.search(await (await client.get(f"/p/{practice.slug}/patients/{user_id}")).text())
        token = match.group(1) if match else "t" * 22
    return await post_form(client, f"/p/{practice.slug}/patients/{user_id}/initial-password",
                           {"form_token": token}, **kwargs)


async def resend_confirmation(client, email: str, *, token: str | None = None, **kwargs):
    """The public "new confirmation mail" form, as a browser sends it."""
    token = token or await form_token(client, "/confirm")
    return await post_form(client, "/confirm", {"email": email, "form_token": token}, **kwargs)


async def send_signup(client, application: dict, *, token: str | None = None, **kwargs):
    """The practice sign-up form, as a browser sends it."""
    token = token or await form_token(client, "/signup")
    return await post_form(client, "/signup", {**application, "form_token": token}, **kwargs)


# Sockets

ORIGIN = {"Origin": "http://localhost:8080"}
JOIN = {"type": "join", "version": 1}


async def next_of(socket, kind: str, within: float = 5.0) -> dict:
    async with asyncio.timeout(within):
        while True:
            message = await socket.receive_json()
            if message["type"] == kind:
                return message


async def participants(socket, count: int, within: float = 5.0) -> dict:
    """The next participant list with `count` people in it."""
    async with asyncio.timeout(within):
        while True:
            message = await next_of(socket, "participants", within)
            if len(message["participants"]) == count:
                return message


async def close_code(socket, within: float = 5.0) -> int | None:
    """Read past whatever is still on the line until the server closes it."""
    async with asyncio.timeout(within):
        while (await socket.receive()).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            pass
    return socket.close_code


async def waiting_people(socket) -> list[dict]:
    return (await next_of(socket, "waiting"))["people"]


# The command line

async def invoke(args: list[str], env: dict[str, str]):
    # The CLI runs its own event loop, so it runs beside the test's, in a thread.
    return await asyncio.to_thread(CliRunner().invoke, main, args, env=env, catch_exceptions=False)


# Real browsers

class SlowLine:
    """A test server's form posts answered as on a slow line: each is handled at once and
    its answer held back `delay` seconds; while a test clicks twice (send_twice), the first
    answer waits for the second click as well, so the browser drops it on a loaded machine
    too. `posts`: the paths posted to, in order; `paths`: which posts (a predicate)."""

    def __init__(self, delay: float, paths) -> None:
        self.delay, self._paths = delay, paths
        self.posts: list[str] = []
        self.clicking_twice = False

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        if request.method != "POST" or not self._paths(request.path):
            return await handler(request)
        self.posts.append(request.path)
        answer = await handler(request)
        async with asyncio.timeout(15):
            while self.clicking_twice:  # noqa: ASYNC110 - set and cleared by send_twice
                await asyncio.sleep(0.05)
        await asyncio.sleep(self.delay)
        return answer


async def send_twice(page, selector: str, line: SlowLine) -> None:
    """Click, and click again while the first sending is still under way (the mouse
    itself: Playwright's click would wait for the first navigation to end). The second
    click waits until the first sending has reached the server: a click before the browser
    sent the first one replaces that sending instead of adding a second."""
    await page.locator(selector).scroll_into_view_if_needed()
    box = await page.locator(selector).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    sent = len(line.posts)
    line.clicking_twice = True
    try:
        await page.mouse.click(x, y)
        async with asyncio.timeout(10):
            while len(line.posts) == sent:  # noqa: ASYNC110 - a plain list the middleware appends to
                await asyncio.sleep(0.05)
        await page.mouse.click(x, y)
        async with asyncio.timeout(10):
            while len(line.posts) == sent + 1:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        line.clicking_twice = False


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the networking flags Chromium keeps calling hosts this network cannot reach.
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # A synthetic camera (a moving pattern) and microphone (a beep), granted without a prompt.
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]
# The browser contexts of the journeys tested at two sizes: a phone (touch) and a desktop.
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Chromium: `apt-get install chromium` (.ci/run installs it)"
)


async def logged_in(browser, base: str, username: str, app: web.Application | None = None, *,
                    device: dict | None = None):
    """A browser of its own, logged in; staff (given the `app`) also give their TOTP code.
    `device`: the browser context's options (a phone's viewport and touch)."""
    page = await (await browser.new_context(locale="de-DE", **(device or {}))).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(base + "/login")
    await page.fill("#identifier", username)
    await page.fill("#password", PASSWORD)
    await page.click("form[action='/login'] button[type=submit]")
    if app is not None:
        await page.wait_for_url("**/login/second-factor*")
        await page.fill("#code", await totp_code(app, username))
        await page.click("form[action='/login/second-factor'] button[type=submit]")
    await page.wait_for_url("**/p/*/")
    return page, errors


# Calls

async def consultation_at_lindenhof(live_server, *, invitees=(), relay_policy: str = "p2p", e2ee_policy: str = "require"):
    """Dr. Sommer's consultation with Erika, who is already admitted: (app, practice,
    consultation, base URL)."""
    app = live_server.app
    services = app[services_key]
    practice = (await services.practices.create("Praxis Lindenhof", admin_email="linde@example.org", admin_username="linde")).practice
    async with app[engine_key].begin() as conn:
        await conn.execute(update(practices).where(practices.c.id == practice.id).values(relay_policy=relay_policy,
                                                                                     e2ee_policy=e2ee_policy))
    doctor_id = await add_member(app, practice, "clinician", "dr-sommer")
    erika = await add_member(app, practice, "patient", "erika")
    plan = Appointment.parse("Kontrolle", services.clock.now() + timedelta(minutes=5), 20, now=services.clock.now())
    consultation = (await services.consultations.schedule(practice, doctor_id, plan, patient_ids=[erika],
                                                          invitees=list(invitees))).consultation
    await services.waiting_room.state.admit(practice.id, consultation.id, f"u{erika}")
    return app, practice, consultation, str(live_server.make_url("")).rstrip("/")


# What the database still holds

async def traces_of(engine, *needles: str) -> list[str]:
    """Every row of every table that mentions one of `needles` (case-insensitive)."""
    found = []
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in await conn.execute(select(table)):
                text = " ".join(str(value) for value in row).lower()
                found += [f"{table.name}: {row}" for needle in needles if needle.lower() in text]
    return found
