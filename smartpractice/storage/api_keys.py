"""API keys of practices, stored only as hashes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.practices import Practice, practice_by_slug
from smartpractice.storage.rows import new_id
from smartpractice.storage.tables import api_keys, practices


@dataclass(frozen=True)
class ApiKey:
    id: int
    practice_id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _api_key(row) -> ApiKey:
    return ApiKey(
        id=row.id,
        practice_id=row.practice_id,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


async def insert_key(
    conn: AsyncConnection, *, practice_id: int, name: str, prefix: str, key_hash: str, now: datetime
) -> int:
    result = await conn.execute(
        insert(api_keys).values(
            practice_id=practice_id, name=name, prefix=prefix, key_hash=key_hash, created_at=now
        )
    )
    return new_id(result)


async def key_by_hash(conn: AsyncConnection, key_hash: str) -> tuple[ApiKey, Practice] | None:
    """The unrevoked key with this hash, and its practice."""
    query = (
        select(api_keys, practices.c.slug)
        .join(practices, practices.c.id == api_keys.c.practice_id)
        .where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    practice = await practice_by_slug(conn, row.slug)
    return None if practice is None else (_api_key(row), practice)


async def mark_used(conn: AsyncConnection, key_id: int, now: datetime) -> None:
    await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))


async def keys_of(conn: AsyncConnection, practice_id: int) -> list[ApiKey]:
    query = select(api_keys).where(api_keys.c.practice_id == practice_id).order_by(api_keys.c.id)
    return [_api_key(row) for row in await conn.execute(query)]


async def revoke_key(conn: AsyncConnection, practice_id: int, key_id: int, now: datetime) -> bool:
    """Revoke one of the practice's keys; False if it has no such unrevoked key."""
    result = await conn.execute(
        update(api_keys)
        .where(
            api_keys.c.id == key_id,
            api_keys.c.practice_id == practice_id,
            api_keys.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return result.rowcount == 1
