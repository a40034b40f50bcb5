"""Attempt counters behind the rate limits; kept in the database so they survive restarts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.tables import throttles


@dataclass(frozen=True)
class Count:
    attempts: int
    locked_until: datetime | None


async def count_attempt(conn: AsyncConnection, key: str, *, now: datetime, window_start: datetime) -> Count:
    """Add one attempt in a single statement, so parallel requests cannot both see the old
    count; a window that began before `window_start` starts over."""
    stale = throttles.c.window_started_at <= window_start
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        module.insert(throttles)
        .values(key=key, failures=1, window_started_at=now, locked_until=None)
        .on_conflict_do_update(
            index_elements=["key"],
            set_={
                "failures": case((stale, 1), else_=throttles.c.failures + 1),
                "window_started_at": case((stale, now), else_=throttles.c.window_started_at),
            },
        )
        .returning(throttles.c.failures, throttles.c.locked_until)
    )
    row = (await conn.execute(statement)).one()
    return Count(row.failures, row.locked_until)


async def lock(conn: AsyncConnection, key: str, until: datetime) -> None:
    await conn.execute(update(throttles).where(throttles.c.key == key).values(locked_until=until))


async def uncount_attempt(conn: AsyncConnection, key: str, *, unlock: bool = False) -> None:
    """Take back one attempt that turned out to be legitimate; `unlock`: and its wait."""
    values: dict = {"failures": throttles.c.failures - 1}
    if unlock:
        values["locked_until"] = None
    await conn.execute(update(throttles).where(throttles.c.key == key, throttles.c.failures > 0).values(**values))


async def locked_until(conn: AsyncConnection, keys: list[str]) -> list[datetime]:
    query = select(throttles.c.locked_until).where(throttles.c.key.in_(keys), throttles.c.locked_until.is_not(None))
    return list((await conn.execute(query)).scalars())


async def clear_throttle(conn: AsyncConnection, key: str) -> None:
    await conn.execute(delete(throttles).where(throttles.c.key == key))


async def clear_throttles_under(conn: AsyncConnection, prefix: str) -> None:
    """Every counter whose key starts with `prefix` (which holds no LIKE wildcards)."""
    await conn.execute(delete(throttles).where(throttles.c.key.startswith(prefix, autoescape=True)))
