"""Fixtures: a real database (SQLite, or PostgreSQL when SMARTPRACTICE_TEST_DATABASE_URL is
set), migrated once per run by Alembic and emptied after each test; a frozen clock; the app.
What the tests call themselves is in helpers.py."""

from __future__ import annotations

import asyncio
import os

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, unused_port
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.accounts.passwords import Passwords
from smartpractice.app import create_app
from smartpractice.clock import FrozenClock
from smartpractice.config import Settings
from smartpractice.keys import engine_key, services_key
from smartpractice.services import Services
from smartpractice.storage.engine import create_engine, upgrade
from smartpractice.storage.practices import Practice
from smartpractice.storage.tables import metadata
from tests.firefox_pages import SCREEN_PREFS, Firefox, virtual_display
from tests.helpers import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    OPERATOR,
    PASSWORD,
    MailCatcher,
    Member,
    add_member,
    cheap_passwords,
    make_settings,
    second_browser,
)
from tests.networks import call_across_nat, coturn, internet, relayed_call_across_nat  # noqa: F401 - fixtures of the network tests
from tests.serve_processes import start_server  # noqa: F401 - a fixture of the tests of serve processes

TEST_DATABASE_URL = os.environ.get("SMARTPRACTICE_TEST_DATABASE_URL", "")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = TEST_DATABASE_URL or f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"

    async def fresh_schema() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
        await engine.dispose()
        await upgrade(url)

    asyncio.run(fresh_schema())
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


@pytest.fixture
def smtp():
    """SMTP on a free local port; the app's settings point at it (SMTP_TLS=none)."""
    catcher = MailCatcher()
    catcher.controller.start()
    yield catcher
    catcher.controller.stop()


@pytest.fixture
def cli_env(tmp_path, database_url) -> dict[str, str]:
    """The environment of a `smartpractice` command against the test database."""
    return {
        "SMARTPRACTICE_DATA_DIR": str(tmp_path),
        "SMARTPRACTICE_DATABASE_URL": database_url,
        "SMARTPRACTICE_AUTO_MIGRATE": "never",
        "SMARTPRACTICE_SECRET_KEY": "test-secret-" + "x" * 40,
        # `serve` needs them outside demo mode (test_config.py: the refusal).
        **OPERATOR,
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


@pytest.fixture
async def other_browser(client):
    """A second browser, with its own cookies, talking to the same running server."""
    async with second_browser(client) as session:
        yield session


@pytest.fixture
async def practice(services) -> Practice:
    created = await services.practices.create("Praxis am Markt", admin_email="chef@example.org", admin_username="chef")
    return created.practice


@pytest.fixture
async def clinician(app, practice) -> Member:
    return Member("dr-berg", PASSWORD, await add_member(app, practice, "clinician", "dr-berg"))


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


def pytest_collection_modifyitems(config, items):
    """CI runs the suite on SQLite and again on PostgreSQL; the media tests (real browsers,
    the relay's aiortc peers) do not touch the database's differences and run once, in the
    first pass (SMARTPRACTICE_TEST_MEDIA=0 leaves them out of the second)."""
    if os.environ.get("SMARTPRACTICE_TEST_MEDIA", "1") != "0":
        return
    media = [item for item in items if item.path.name.startswith(("test_browser", "test_relay"))]
    if media:
        config.hook.pytest_deselected(items=media)
        items[:] = [item for item in items if item not in media]


@pytest.fixture
async def firefox():
    """Debian's firefox-esr with a synthetic camera and microphone, allowed to use both."""
    async with Firefox.launched() as launched:
        yield launched


@pytest.fixture
async def firefox_with_a_screen():
    """firefox-esr as above, in a window on a virtual X display (Xvfb, 1280x720) that it may
    share without asking (headless Firefox has no screen to share)."""
    async with virtual_display() as display, Firefox.launched(SCREEN_PREFS, display=display) as launched:
        yield launched
