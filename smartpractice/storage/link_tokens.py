"""One-time link tokens (email confirmation, password reset), stored as hashes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.tables import link_tokens, memberships, practices


@dataclass(frozen=True)
class LinkToken:
    id: int
    purpose: str
    user_id: int
    expires_at: datetime
    used_at: datetime | None


async def insert_token(
    conn: AsyncConnection, *, purpose: str, token_hash: str, user_id: int, now: datetime, expires_at: datetime
) -> None:
    await conn.execute(
        insert(link_tokens).values(
            purpose=purpose, token_hash=token_hash, user_id=user_id, created_at=now, expires_at=expires_at
        )
    )


async def token_by_hash(conn: AsyncConnection, token_hash: str) -> LinkToken | None:
    row = (await conn.execute(select(link_tokens).where(link_tokens.c.token_hash == token_hash))).first()
    if row is None:
        return None
    return LinkToken(row.id, row.purpose, row.user_id, row.expires_at, row.used_at)


async def use_token(conn: AsyncConnection, token_id: int, now: datetime) -> bool:
    """Mark a token used; False if it already was (two clicks racing)."""
    result = await conn.execute(
        update(link_tokens)
        .where(link_tokens.c.id == token_id, link_tokens.c.used_at.is_(None))
        .values(used_at=now)
    )
    return result.rowcount == 1


async def invalidate_tokens(conn: AsyncConnection, user_id: int, purpose: str, now: datetime) -> None:
    """Older links of the same purpose stop working when a new one is sent."""
    await conn.execute(
        update(link_tokens)
        .where(link_tokens.c.user_id == user_id, link_tokens.c.purpose == purpose, link_tokens.c.used_at.is_(None))
        .values(used_at=now)
    )


async def replaced(conn: AsyncConnection, token: LinkToken) -> bool:
    """Whether a newer link of the same purpose ended this one: invalidate_tokens marks the
    older links used at the very moment the new one is made."""
    row = (await conn.execute(
        select(link_tokens.c.id).where(
            link_tokens.c.user_id == token.user_id, link_tokens.c.purpose == token.purpose,
            link_tokens.c.id > token.id, link_tokens.c.created_at == token.used_at,
        ).limit(1)
    )).first()
    return row is not None


async def time_zone_of(conn: AsyncConnection, user_id: int) -> str | None:
    """The zone of the user's first practice, if they belong to one."""
    return (await conn.execute(
        select(practices.c.time_zone).join(memberships, memberships.c.practice_id == practices.c.id)
        .where(memberships.c.user_id == user_id).order_by(memberships.c.id).limit(1)
    )).scalar()
