"""The session read in the event loop's thread on SQLite, and its way out when it meets a
lock. A module of its own, with a database file of its own: the test's exclusive lock needs
every other connection to the file closed, and in WAL mode an open connection keeps a
shared lock on the file; other modules' apps may still hold theirs."""

from __future__ import annotations

import asyncio
import os
import sqlite3

import pytest

from smartpractice.storage.engine import upgrade
from tests.helpers import log_in


@pytest.fixture(scope="module")
def database_url(tmp_path_factory) -> str:
    shared = os.environ.get("SMARTPRACTICE_TEST_DATABASE_URL", "")
    if shared:
        return shared
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('own-db') / 'test.sqlite3'}"
    asyncio.run(upgrade(url))
    return url


async def test_on_sqlite_a_page_whose_session_read_meets_a_lock_waits_for_it_in_aiosqlites_thread(
    client, database_url, engine, services, clinician
):
    """On SQLite the session is read in the event loop's thread, which must never wait long
    for a lock; when it meets one, the read goes through aiosqlite's thread, which waits."""
    if not database_url.startswith("sqlite"):
        pytest.skip("the event loop's own reader exists for SQLite only (PostgreSQL has no thread round trips)")
    await log_in(client, "dr-berg")
    # An exclusive lock on a WAL database needs every other connection closed first.
    await engine.dispose()
    services.sessions.reader.dispose()
    path = database_url.split(":///", 1)[1]
    # The app's own work in hand (the login's writes, mail, jobs) may hold the file: wait
    # for it without blocking the event loop that work needs to finish.
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    for _ in range(600):
        try:
            holder.execute("BEGIN EXCLUSIVE")
            break
        except sqlite3.OperationalError:
            if holder.in_transaction:
                holder.execute("ROLLBACK")
            await asyncio.sleep(0.05)
    else:
        pytest.fail("the database stayed locked for 30 s")
    page = asyncio.create_task(client.get("/account", allow_redirects=False))
    await asyncio.sleep(0.5)
    assert not page.done()  # waiting for the lock, not refused
    holder.execute("ROLLBACK")
    holder.close()
    assert (await page).status == 200
