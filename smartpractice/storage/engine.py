"""Engines and the schema check that keeps the server off an out-of-date database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
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
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10, pool_timeout=WAIT_SECONDS)


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
