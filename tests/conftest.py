"""Fixtures: a real database (SQLite, or PostgreSQL when SMARTPRACTICE_TEST_DATABASE_URL is
set), migrated once per run by Alembic and emptied after each test; a frozen clock; the app."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pyotp
import pytest
from aiohttp import ClientSession, CookieJar, web
from aiohttp.test_utils import TestClient, unused_port
from aiosmtpd.controller import Controller
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine
from yarl import URL

from smartpractice.accounts.passwords import Passwords
from smartpractice.app import create_app
from smartpractice.clock import FrozenClock
from smartpractice.config import Settings
from smartpractice.keys import clock_key, engine_key, services_key
from smartpractice.services import Services
from smartpractice.storage import practices as practice_store
from smartpractice.storage import second_factors as factor_store
from smartpractice.storage import users as user_store
from smartpractice.storage.engine import create_engine, upgrade
from smartpractice.storage.practices import Practice
from smartpractice.storage.tables import metadata
from tests.helpers import cheap_passwords

TEST_DATABASE_URL = os.environ.get("SMARTPRACTICE_TEST_DATABASE_URL", "")
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "amber-violin-harbour-77"


async def _fresh_schema(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()
    await upgrade(url)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = TEST_DATABASE_URL or f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    asyncio.run(_fresh_schema(url))
    return url


@pytest.fixture(autouse=True)
def empty_database(request):
    """After each test that touched the database, delete every row (the schema stays)."""
    yield
    if "database_url" not in request.fixturenames:
        return
    url = request.getfixturevalue("database_url")

    async def wipe() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                await conn.execute(delete(table))
        await engine.dispose()

    asyncio.run(wipe())


class MailCatcher:
    """A real SMTP server in the test process (aiosmtpd); tests read what it received."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse = False
        self.controller = Controller(self, hostname="127.0.0.1", port=unused_port())

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        if self.refuse:
            return "451 4.3.0 try again later"
        # aiosmtpd runs in its own thread; list.append is atomic, and tests poll.
        self.messages.append(BytesParser(policy=policy.default).parsebytes(envelope.content))
        return "250 OK"

    async def wait_for(self, count: int, within: float = 10.0) -> list[EmailMessage]:
        async with asyncio.timeout(within):
            while len(self.messages) < count:  # noqa: ASYNC110 - appended from aiosmtpd's thread
                await asyncio.sleep(0.02)
        return self.messages

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


def mail_text(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def mail_link(message: EmailMessage) -> str:
    """The first link into this service in a mail's text part, made relative."""
    match = re.search(r"http://localhost:8080(/\S+)", mail_text(message))
    assert match, mail_text(message)
    return match.group(1)


@pytest.fixture
def smtp():
    """SMTP on a free local port; the app's settings point at it (SMTP_TLS=none)."""
    catcher = MailCatcher()
    catcher.controller.start()
    yield catcher
    catcher.controller.stop()


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


@pytest.fixture
def cli_env(tmp_path, database_url) -> dict[str, str]:
    """The environment of a `smartpractice` command against the test database."""
    return {
        "SMARTPRACTICE_DATA_DIR": str(tmp_path),
        "SMARTPRACTICE_DATABASE_URL": database_url,
        "SMARTPRACTICE_AUTO_MIGRATE": "never",
        "SMARTPRACTICE_SECRET_KEY": "test-secret-" + "x" * 40,
    }


@pytest.fixture
def settings(tmp_path, database_url, request) -> Settings:
    """Mail goes to the `smtp` fixture when a test asks for it, else into tmp_path/outbox."""
    if "smtp" in request.fixturenames:
        port = request.getfixturevalue("smtp").controller.port
        return make_settings(tmp_path, database_url, SMTP_HOST="127.0.0.1", SMTP_PORT=str(port), SMTP_TLS="none")
    return make_settings(tmp_path, database_url)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def passwords() -> Passwords:
    """The app's password hashing: real argon2id, at the cheapest cost."""
    return cheap_passwords()


@pytest.fixture
async def client(aiohttp_client, settings, clock, passwords) -> TestClient:
    return await aiohttp_client(create_app(settings, clock=clock, passwords=passwords))


# Which app a plain ClientSession talks to, so log_in can find the TOTP secrets behind it.
_APP_OF_SESSION: dict[int, web.Application] = {}


@pytest.fixture
async def other_browser(client):
    """A second browser, with its own cookies, talking to the same running server."""
    jar = CookieJar(unsafe=True)
    headers = {"User-Agent": "Tablet-Browser/1.0"}
    async with ClientSession(base_url=str(client.make_url("/")), cookie_jar=jar, headers=headers) as session:
        _APP_OF_SESSION[id(session)] = client.app
        yield session
        del _APP_OF_SESSION[id(session)]


@pytest.fixture
def app(client) -> web.Application:
    return client.app


@pytest.fixture
def services(app) -> Services:
    return app[services_key]


@pytest.fixture
def engine(app) -> AsyncEngine:
    """The app's database engine, for tests that set up or look at rows directly."""
    return app[engine_key]


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
    within a test), the test's frozen clock moves on by one step.
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
        for step in (current - 1, current, current + 1):
            if factor.last_used_step is None or step > factor.last_used_step:
                return totp.generate_otp(step)
        clock.advance(seconds=30)


@dataclass
class Member:
    username: str
    password: str
    user_id: int


@pytest.fixture
async def practice(services) -> Practice:
    created = await services.practices.create("Praxis am Markt", admin_email="chef@example.org", admin_username="chef")
    return created.practice


@pytest.fixture
async def clinician(app, practice) -> Member:
    return Member("dr-berg", PASSWORD, await add_member(app, practice, "clinician", "dr-berg"))


async def csrf_token(client: TestClient, path: str = "/privacy") -> str:
    page = await client.get(path)
    match = CSRF_FIELD.search(await page.text())
    assert match, f"no CSRF token on {path}"
    return match.group(1)


async def post_form(client: TestClient, path: str, data: dict, **kwargs):
    token = await csrf_token(client)
    return await client.post(path, data={**data, "csrf_token": token}, allow_redirects=False, **kwargs)


def app_of(client: TestClient | ClientSession) -> web.Application:
    return client.app if isinstance(client, TestClient) else _APP_OF_SESSION[id(client)]


async def log_in(client: TestClient, identifier: str, password: str = PASSWORD):
    """Log in with the password and, for staff, the second factor as their app would give it."""
    response = await post_form(client, "/login", {"identifier": identifier, "password": password})
    location = response.headers.get("Location", "")
    if response.status == 303 and location.startswith("/login/second-factor"):
        code = await totp_code(app_of(client), identifier)
        target = URL(location).query.get("next", "")
        response = await post_form(client, "/login/second-factor", {"code": code, "next": target})
    return response


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the networking flags Chromium keeps calling hosts this network cannot reach.
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # A synthetic camera (a moving pattern) and microphone (a beep), granted without a prompt.
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Chromium: `apt-get install chromium` (.ci/run installs it)"
)


@pytest.fixture
async def live_server(aiohttp_server, tmp_path, database_url, passwords, request):
    """The app on a real port, its BASE_URL matching, so a browser's Origin checks out."""
    port = unused_port()
    overrides = {"BASE_URL": f"http://127.0.0.1:{port}"}
    if "smtp" in request.fixturenames:
        smtp_port = request.getfixturevalue("smtp").controller.port
        overrides.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp_port), SMTP_TLS="none")
    app = create_app(make_settings(tmp_path, database_url, **overrides), passwords=passwords)
    return await aiohttp_server(app, port=port)


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        await launched.close()
