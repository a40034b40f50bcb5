"""Many logins at once: a full hashing queue answers "try again in a few seconds" (503 with
Retry-After) as a page, a re-shown form and a JSON error; a client that leaves takes its
queued hash with it; SQLite's throttle writes under a crowd answer no 500."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import aiohttp
import argon2
import pytest

from smartpractice.accounts.passwords import Passwords
from smartpractice.app import create_app
from smartpractice.keys import services_key
from smartpractice.storage.engine import upgrade
from tests.helpers import PASSWORD, add_member, csrf_token, mail_settled, make_settings, post_form

HELD = "held-back-password-41"  # a verification of this waits until the test lets it go


class GatedHasher(argon2.PasswordHasher):
    """Real argon2id at the cheapest cost that records what it verified and holds back
    verifications of HELD, so the test decides when the hashing slot frees up."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verified: list[str] = []
        self.holding = threading.Event()
        self.release = threading.Event()

    def verify(self, hash, password):  # noqa: A002 - argon2's own parameter name
        self.verified.append(password)
        if password == HELD:
            self.holding.set()
            self.release.wait(30)
        return super().verify(hash, password)


@pytest.fixture
def hasher():
    gated = GatedHasher()
    yield gated
    gated.release.set()


async def start(aiohttp_client, settings, clock, hasher, *, queue: int, wait_seconds: int = 30):
    """The app with one hashing slot, `queue` places behind it, a patient and an admin."""
    passwords = Passwords(concurrency=1, queue=queue, wait_seconds=wait_seconds, hasher=hasher)
    client = await aiohttp_client(create_app(settings, clock=clock, passwords=passwords))
    services = client.app[services_key]
    created = await services.practices.create("Praxis am Markt", admin_email="chef@example.org", admin_username="chef")
    await add_member(client.app, created.practice, "patient", "paula")
    return client, created.practice


async def hold_the_slot(client, hasher) -> asyncio.Task:
    """Someone whose password check takes the only slot until the test releases it."""
    token = await csrf_token(client)
    held = asyncio.create_task(
        client.post("/login", data={"identifier": "chef", "password": HELD, "csrf_token": token}, allow_redirects=False)
    )
    assert await asyncio.to_thread(hasher.holding.wait, 10), "the held login never reached the hasher"
    return held


async def test_a_login_beyond_the_queue_gets_the_form_again_with_retry_after(aiohttp_client, settings, clock, hasher):
    client, _ = await start(aiohttp_client, settings, clock, hasher, queue=0)
    held = await hold_the_slot(client, hasher)

    # More tries than the account's lockout allows: being told to wait must not lock anyone out.
    for _ in range(7):
        busy = await post_form(client, "/login", {"identifier": "paula", "password": PASSWORD})
        assert busy.status == 503
        assert 1 <= int(busy.headers["Retry-After"]) <= 10
        page = await busy.text()
        assert "Gerade melden sich sehr viele Menschen an" in page
        assert 'value="paula"' in page
        assert "sp_session" not in busy.cookies
    assert hasher.verified.count(PASSWORD) == 0

    hasher.release.set()
    assert (await held).status == 401
    logged_in = await post_form(client, "/login", {"identifier": "paula", "password": PASSWORD})
    assert logged_in.status == 303
    assert logged_in.headers["Location"] == "/"


async def test_a_login_that_waited_past_the_budget_is_not_counted_either(aiohttp_client, settings, clock, hasher):
    client, _ = await start(aiohttp_client, settings, clock, hasher, queue=1, wait_seconds=1)
    held = await hold_the_slot(client, hasher)
    for _ in range(7):  # queued, then given up after about a second: more than the lockout allows
        busy = await post_form(client, "/login", {"identifier": "paula", "password": PASSWORD})
        assert busy.status == 503
        assert "Gerade melden sich sehr viele Menschen an" in await busy.text()
    hasher.release.set()
    await held
    assert (await post_form(client, "/login", {"identifier": "paula", "password": PASSWORD})).status == 303


async def test_the_busy_page_is_in_english_for_english_browsers(aiohttp_client, settings, clock, hasher):
    client, _ = await start(aiohttp_client, settings, clock, hasher, queue=0)
    held = await hold_the_slot(client, hasher)
    busy = await post_form(client, "/login", {"identifier": "paula", "password": PASSWORD},
                           headers={"Accept-Language": "en"})
    assert busy.status == 503
    assert "Very many people are logging in right now" in await busy.text()
    hasher.release.set()
    await held


async def test_the_api_answers_busy_json_with_retry_after(aiohttp_client, settings, clock, hasher):
    client, practice = await start(aiohttp_client, settings, clock, hasher, queue=0)
    key = (await client.app[services_key].api_keys.create(practice, "Praxissoftware")).key
    held = await hold_the_slot(client, hasher)

    patient = {"email": "erika@example.org", "username": "erika-m", "display_name": "Erika Mustermann"}
    response = await client.post("/api/v1/patients", json=patient, headers={"Authorization": f"Bearer {key}"})
    assert response.status == 503
    assert 1 <= int(response.headers["Retry-After"]) <= 10
    assert (await response.json())["code"] == "busy"

    hasher.release.set()
    await held
    again = await client.post("/api/v1/patients", json=patient, headers={"Authorization": f"Bearer {key}"})
    assert again.status == 201, await again.text()


async def test_a_client_that_leaves_takes_its_queued_hash_with_it(aiohttp_client, settings, clock, hasher):
    client, _ = await start(aiohttp_client, settings, clock, hasher, queue=1)
    passwords = client.app[services_key].passwords
    held = await hold_the_slot(client, hasher)

    token = await csrf_token(client)
    for _ in range(7):  # more than the lockout allows: a login nobody waits for is not counted
        with pytest.raises(asyncio.TimeoutError):
            await client.post("/login", data={"identifier": "paula", "password": PASSWORD, "csrf_token": token},
                              timeout=aiohttp.ClientTimeout(total=1))
        async with asyncio.timeout(10):
            while passwords.waiting > 1:  # noqa: ASYNC110 - the queued login goes when its client does
                await asyncio.sleep(0.05)

    hasher.release.set()
    assert (await held).status == 401
    assert HELD in hasher.verified
    assert PASSWORD not in hasher.verified
    assert (await post_form(client, "/login", {"identifier": "paula", "password": PASSWORD})).status == 303


@pytest.fixture
async def sqlite_settings(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'rush.sqlite3'}"
    await upgrade(url)
    return make_settings(tmp_path, url), tmp_path / "rush.sqlite3"


async def test_sqlite_counts_a_crowd_of_logins_without_a_500(aiohttp_client, sqlite_settings, clock):
    settings, _ = sqlite_settings
    passwords = Passwords(concurrency=2, queue=200, hasher=argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    client = await aiohttp_client(create_app(settings, clock=clock, passwords=passwords))
    token = await csrf_token(client)

    async def attempt(number: int) -> int:
        form = {"identifier": f"nobody-{number}", "password": "wrong-password-123", "csrf_token": token}
        return (await client.post("/login", data=form, allow_redirects=False)).status

    statuses = await asyncio.gather(*(attempt(number) for number in range(60)))
    # Each attempt is counted (the address locks after 30) and answered: no "database is locked".
    assert statuses == [401] * 60


async def test_sqlite_locked_longer_than_the_busy_timeout_answers_503_not_500(aiohttp_client, sqlite_settings, clock):
    settings, path = sqlite_settings
    client = await aiohttp_client(create_app(settings, clock=clock, passwords=Passwords(
        concurrency=1, hasher=argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))))
    token = await csrf_token(client)
    await mail_settled(client.app)  # the mail sender's first round is not what this test is about
    # Another process holds the write lock past the server's busy_timeout.
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        form = {"identifier": "paula", "password": PASSWORD, "csrf_token": token}
        response = await client.post("/login", data=form, allow_redirects=False)
        assert response.status == 503
        assert 1 <= int(response.headers["Retry-After"]) <= 10
        assert "Gerade nutzen sehr viele Menschen den Dienst" in await response.text()
    finally:
        other.execute("ROLLBACK")
        other.close()
    again = await client.post("/login", data={**form}, allow_redirects=False)
    assert again.status == 401
