"""Practices and who belongs to them in which role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.tables import memberships, practices


@dataclass(frozen=True)
class Practice:
    id: int
    slug: str
    name: str


@dataclass(frozen=True)
class Membership:
    practice: Practice
    role: str


def _practice(row) -> Practice:
    return Practice(id=row.id, slug=row.slug, name=row.name)


async def insert_practice(conn: AsyncConnection, *, slug: str, name: str, now: datetime) -> Practice:
    result = await conn.execute(insert(practices).values(slug=slug, name=name, created_at=now))
    return Practice(id=result.inserted_primary_key[0], slug=slug, name=name)


async def practice_by_slug(conn: AsyncConnection, slug: str) -> Practice | None:
    row = (await conn.execute(select(practices).where(practices.c.slug == slug))).first()
    return None if row is None else _practice(row)


async def slug_exists(conn: AsyncConnection, slug: str) -> bool:
    query = select(practices.c.id).where(practices.c.slug == slug)
    return (await conn.execute(query)).first() is not None


async def add_member(
    conn: AsyncConnection, *, practice_id: int, user_id: int, role: str, now: datetime
) -> None:
    await conn.execute(
        insert(memberships).values(practice_id=practice_id, user_id=user_id, role=role, created_at=now)
    )


async def memberships_of(conn: AsyncConnection, user_id: int) -> list[Membership]:
    query = (
        select(practices, memberships.c.role)
        .join(memberships, memberships.c.practice_id == practices.c.id)
        .where(memberships.c.user_id == user_id)
        .order_by(practices.c.name)
    )
    return [Membership(_practice(row), row.role) for row in await conn.execute(query)]


async def membership_in(conn: AsyncConnection, user_id: int, slug: str) -> Membership | None:
    query = (
        select(practices, memberships.c.role)
        .join(memberships, memberships.c.practice_id == practices.c.id)
        .where(memberships.c.user_id == user_id, practices.c.slug == slug)
    )
    row = (await conn.execute(query)).first()
    return None if row is None else Membership(_practice(row), row.role)


async def practice_name(conn: AsyncConnection, practice_id: int) -> str:
    return (await conn.execute(select(practices.c.name).where(practices.c.id == practice_id))).scalar_one()


async def role_in(conn: AsyncConnection, practice_id: int, user_id: int) -> str | None:
    query = select(memberships.c.role).where(memberships.c.practice_id == practice_id, memberships.c.user_id == user_id)
    return (await conn.execute(query)).scalar_one_or_none()
