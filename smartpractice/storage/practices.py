"""Practices and who belongs to them in which role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.rows import new_id
from smartpractice.storage.tables import STAFF_ROLES, memberships, practices


@dataclass(frozen=True)
class Practice:
    id: int
    slug: str
    name: str
    # A signed-up practice is unconfirmed until its first admin confirms their address.
    confirmed: bool = True
    suspended: bool = False


@dataclass(frozen=True)
class Membership:
    practice: Practice
    role: str
    # An admin may treat patients too; a clinician always does (the column's comment).
    treats_patients: bool = False

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_clinician(self) -> bool:
        """Holds consultations: schedules them, sees the waiting room, takes a seat."""
        return self.treats_patients


def practice_from_row(row) -> Practice:
    return practice_from(row._mapping)


def practice_from(values, prefix: str = "") -> Practice:
    """A Practice from a row's mapping whose practice columns are named `prefix` + column name."""
    return Practice(
        id=values[prefix + "id"], slug=values[prefix + "slug"], name=values[prefix + "name"],
        confirmed=values[prefix + "confirmed_at"] is not None, suspended=values[prefix + "suspended_at"] is not None,
    )


async def insert_practice(
    conn: AsyncConnection, *, slug: str, name: str, now: datetime, confirmed: bool = True, **details: object
) -> Practice:
    """A new practice; `details` are further columns (kind, address, contact, seats)."""
    result = await conn.execute(
        insert(practices).values(slug=slug, name=name, created_at=now, confirmed_at=now if confirmed else None, **details)
    )
    return Practice(id=new_id(result), slug=slug, name=name, confirmed=confirmed)


async def practice_by_id(conn: AsyncConnection, practice_id: int) -> Practice | None:
    row = (await conn.execute(select(practices).where(practices.c.id == practice_id))).first()
    return None if row is None else practice_from_row(row)


async def practice_by_slug(conn: AsyncConnection, slug: str) -> Practice | None:
    row = (await conn.execute(select(practices).where(practices.c.slug == slug))).first()
    return None if row is None else practice_from_row(row)


async def slug_exists(conn: AsyncConnection, slug: str) -> bool:
    query = select(practices.c.id).where(practices.c.slug == slug)
    return (await conn.execute(query)).first() is not None


async def add_member(
    conn: AsyncConnection, *, practice_id: int, user_id: int, role: str, now: datetime,
    treats_patients: bool | None = None,
) -> None:
    """`treats_patients`: only an admin chooses; a clinician always does, a patient never."""
    treats = role == "clinician" or (role == "admin" and bool(treats_patients))
    await conn.execute(
        insert(memberships).values(
            practice_id=practice_id, user_id=user_id, role=role, treats_patients=treats, created_at=now
        )
    )


async def confirm_practices_of(conn: AsyncConnection, user_id: int, now: datetime) -> list[int]:
    """Confirm the unconfirmed practices this user administers; returns their ids."""
    query = (
        select(practices.c.id)
        .join(memberships, memberships.c.practice_id == practices.c.id)
        .where(memberships.c.user_id == user_id, memberships.c.role == "admin", practices.c.confirmed_at.is_(None))
    )
    ids = list((await conn.execute(query)).scalars())
    if ids:
        await conn.execute(update(practices).where(practices.c.id.in_(ids)).values(confirmed_at=now))
    return ids


async def set_suspended(conn: AsyncConnection, practice_id: int, when: datetime | None) -> bool:
    result = await conn.execute(update(practices).where(practices.c.id == practice_id).values(suspended_at=when))
    return result.rowcount == 1


async def memberships_of(conn: AsyncConnection, user_id: int) -> list[Membership]:
    query = (
        select(practices, memberships.c.role, memberships.c.treats_patients)
        .join(memberships, memberships.c.practice_id == practices.c.id)
        .where(memberships.c.user_id == user_id, memberships.c.deactivated_at.is_(None))
        .order_by(practices.c.name)
    )
    return [Membership(practice_from_row(row), row.role, row.treats_patients) for row in await conn.execute(query)]


async def membership_in(conn: AsyncConnection, user_id: int, slug: str) -> Membership | None:
    query = (
        select(practices, memberships.c.role, memberships.c.treats_patients)
        .join(memberships, memberships.c.practice_id == practices.c.id)
        .where(memberships.c.user_id == user_id, practices.c.slug == slug, memberships.c.deactivated_at.is_(None))
    )
    row = (await conn.execute(query)).first()
    return None if row is None else Membership(practice_from_row(row), row.role, row.treats_patients)


async def practice_name(conn: AsyncConnection, practice_id: int) -> str:
    return (await conn.execute(select(practices.c.name).where(practices.c.id == practice_id))).scalar_one()


async def treats_patients_in(conn: AsyncConnection, practice_id: int, user_id: int) -> bool:
    """Whether the user is an active member of the practice who holds consultations."""
    query = select(memberships.c.id).where(
        memberships.c.practice_id == practice_id, memberships.c.user_id == user_id,
        memberships.c.deactivated_at.is_(None), memberships.c.treats_patients.is_(True),
    )
    return (await conn.execute(query)).first() is not None


async def staff_practice_ids(conn: AsyncConnection, user_id: int) -> list[int]:
    """Practices where the user is active staff; suspended or unconfirmed ones included."""
    query = select(memberships.c.practice_id).where(
        memberships.c.user_id == user_id,
        memberships.c.role.in_(STAFF_ROLES),
        memberships.c.deactivated_at.is_(None),
    )
    return sorted((await conn.execute(query)).scalars())

