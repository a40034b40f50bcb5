"""Engines and the schema check that keeps the server off an out-of-date database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaOutOfDate(RuntimeError):
    """The database is behind (or ahead of) the code's migrations."""


def _ensure_sqlite_folder(url: str) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return True


# Under a crowd, a request waits at most this long for a pooled connection, and on SQLite
# as long again for the write lock; then it is answered 503 with Retry-After
# (errors.busy_database), not left hanging or answered 500.
WAIT_SECONDS = 4


def create_engine(url: str) -> AsyncEngine:
    if _ensure_sqlite_folder(url):
        # SQLite writes one at a time whatever the pool; 15 connections let reads go on beside.
        engine = create_async_engine(
            url, connect_args={"timeout": WAIT_SECONDS}, pool_size=5, max_overflow=10, pool_timeout=WAIT_SECONDS
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping: on asyncpg it is three round trips (BEGIN, an empty query, ROLLBACK) before
    # every checkout, more than the query a page makes. A connection the database closed is
    # dropped at checkout without asking it (_drop_closed, asyncpg's); one that dies unnoticed fails
    # one statement, which invalidates the pool (reads retry: read_once_more; the rest is
    # answered 503, errors.busy_database). Recycling replaces connections a firewall may have
    # dropped silently. No overflow: an overflow connection is closed when handed back, and
    # a burst of logged-in pages (each one short read) opened and closed dozens a second.
    engine = create_async_engine(
        url, pool_size=20, max_overflow=0, pool_timeout=WAIT_SECONDS, pool_recycle=RECYCLE_SECONDS,
    )
    if engine.dialect.driver == "asyncpg":
        event.listen(engine.sync_engine, "checkout", _drop_closed)
    return engine


RECYCLE_SECONDS = 30 * 60


def _drop_closed(dbapi_connection, _record, _proxy) -> None:
    """A connection whose socket the database closed (pg_terminate_backend, a restart) is
    known closed to asyncpg without a round trip; the pool replaces it with a new one.

    asyncpg's only (`is_closed` is its API), and registered for asyncpg only: the project's
    PostgreSQL driver (docs/configuration.md). SQLite has no server that could close a
    connection, so its engine (above) has no such check; another PostgreSQL driver would go
    without it, as with a connection that dies unnoticed: one failed statement, the pool
    invalidated, reads tried once more."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the database closed this connection")


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """The engine for reads of a single statement: on PostgreSQL without BEGIN and ROLLBACK
    around it (one statement sees one snapshot either way), sharing the engine's pool.
    SQLite keeps its transactions: changing the mode there is a round trip to aiosqlite's thread."""
    if engine.dialect.name != "postgresql":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


T = TypeVar("T")


async def read_once_more(engine: AsyncEngine, read: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """A read, and once more on a new connection if the database had closed the one it got
    before it was noticed: the failure invalidated the pool, so the second try connects anew.
    Only for reads: a write may have happened before the connection went."""
    try:
        async with engine.connect() as conn:
            return await read(conn)
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    async with engine.connect() as conn:
        return await read(conn)


# A reader in the event loop's thread waits this long at most for SQLite's lock (a WAL reader
# meets one only while a crashed writer's log is recovered); then it asks aiosqlite's thread.
LOOP_READ_WAIT_SECONDS = 0.05


def create_loop_reader(url: str) -> Engine | None:
    """For an SQLite file, a synchronous engine for the short reads every page makes, run
    in the event loop's own thread. Such a read takes about 20 µs in SQLite, while every
    step of it through aiosqlite (cursor, execute, fetch, rollback) is a round trip to
    another thread: together several times the cost of the page (docs/performance.md).
    In WAL mode a reader does not wait for writers. None for other databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    engine = create_sync_engine(
        parsed.set(drivername="sqlite"), connect_args={"timeout": LOOP_READ_WAIT_SECONDS, "check_same_thread": False},
    )
    event.listen(engine, "connect", _reader_pragmas)
    return engine


def _reader_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(LOOP_READ_WAIT_SECONDS * 1000)}")
    cursor.close()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """On every new connection: WAL lets readers go on while one writes; busy_timeout makes
    a writer wait for the lock instead of failing at once with "database is locked"."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={WAIT_SECONDS * 1000}")
    cursor.close()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


async def current_revision(conn: AsyncConnection) -> str | None:
    return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


async def check_schema(engine: AsyncEngine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    async with engine.connect() as conn:
        current = await current_revision(conn)
    head = head_revision(url)
    if current == head:
        return
    script = ScriptDirectory.from_config(alembic_config(url))
    known = {revision.revision for revision in script.walk_revisions()}
    if current is not None and current not in known:
        raise SchemaOutOfDate(
            f"The database schema is at revision {current}, which this version of smartpractice "
            "does not know: it was upgraded by a newer version. Run that version, or restore a backup."
        )
    raise SchemaOutOfDate(
        f"The database schema is at revision {current or 'none'}, the code needs {head}. "
        "Run `smartpractice db upgrade` first."
    )


async def upgrade(url: str) -> None:
    """Run `alembic upgrade head`; Alembic's env drives its own event loop, so use a thread."""
    _ensure_sqlite_folder(url)
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")


async def downgrade(url: str, revision: str) -> None:
    await asyncio.to_thread(command.downgrade, alembic_config(url), revision)


PING_SECONDS = 2.0


async def ping(engine: AsyncEngine) -> bool:
    """True when the database answers within PING_SECONDS and carries our schema."""
    try:
        async with asyncio.timeout(PING_SECONDS):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT version_num FROM alembic_version"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not healthy"
        return False
