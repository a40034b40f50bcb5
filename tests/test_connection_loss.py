"""PostgreSQL closes the app's connections (a restart, pg_terminate_backend): pages go on
being served. The pool does not ping before each checkout (docs/performance.md, "Pages"),
so these tests hold what the ping used to: a closed connection is replaced, a read is
tried once more, and a request that loses its connection midway is told to retry (503)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.errors import busy_database
from smartpractice.storage.engine import create_engine, read_once_more
from tests.helpers import log_in


@pytest.fixture
def postgresql(database_url) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server that could close a connection")
    return database_url


async def close_connections(database_url: str, pids: list[int] | None = None) -> None:
    """As a database restart does: the server ends the backends (all of this database's but
    the caller's own, or those named) and this returns once they are gone."""
    killer = create_engine(database_url)
    try:
        # Outside a transaction: pg_stat_activity is read once per transaction.
        async with killer.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            own = await conn.scalar(text("SELECT pg_backend_pid()"))
            if pids is None:
                pids = list((await conn.execute(text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> :own"
                ), {"own": own})).scalars())
            for pid in pids:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            for _ in range(200):
                left = await conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                                         {"pids": pids})
                if not left:
                    return
                await asyncio.sleep(0.02)
        pytest.fail(f"backends {pids} still there after 4 s")
    finally:
        await killer.dispose()


async def test_pages_are_served_after_the_database_closed_every_connection(client, postgresql, practice, clinician):
    await log_in(client, "dr-berg")
    dashboard = f"/p/{practice.slug}/"
    assert (await client.get(dashboard)).status == 200
    for _ in range(3):
        await close_connections(postgresql)
        for page in (dashboard, "/account", dashboard):
            response = await client.get(page, allow_redirects=False)
            assert response.status == 200, (page, response.status)


async def test_a_dashboard_requested_while_its_connection_is_being_closed_is_served(
    client, postgresql, practice, clinician
):
    """The page comes while the server is still closing the connection, before the app
    may have noticed: the session read fails there and is tried once more on a new one."""
    await log_in(client, "dr-berg")
    dashboard = f"/p/{practice.slug}/"
    killer = create_engine(postgresql)
    try:
        for _ in range(10):
            async with killer.connect() as conn:
                await conn.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ))
            response = await client.get(dashboard, allow_redirects=False)
            assert response.status == 200
    finally:
        await killer.dispose()


async def own_pid(conn: AsyncConnection) -> int:
    return await conn.scalar(text("SELECT pg_backend_pid()"))


async def test_a_read_whose_connection_is_closed_under_it_is_read_again_on_a_new_one(postgresql, engine):
    tries: list[int] = []

    async def read(conn: AsyncConnection) -> int:
        pid = await own_pid(conn)
        tries.append(pid)
        if len(tries) == 1:
            await close_connections(postgresql, [pid])
        return await conn.scalar(text("SELECT 42"))

    assert await read_once_more(engine, read) == 42
    assert len(tries) == 2 and tries[0] != tries[1]


async def test_a_request_that_loses_its_connection_midway_is_told_to_retry(postgresql, engine):
    """What the error pages make of it: 503 with Retry-After, not 500; the pool has new
    connections for the retry."""
    async with engine.connect() as conn:
        await close_connections(postgresql, [await own_pid(conn)])
        with pytest.raises(DBAPIError) as lost:
            await conn.execute(text("SELECT 1"))
    busy = busy_database(lost.value)
    assert busy is not None and busy.what == "database_connection_lost"
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT 1")) == 1
