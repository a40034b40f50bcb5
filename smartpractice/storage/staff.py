"""A practice's staff: admins and clinicians, active or deactivated."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.tables import STAFF_ROLES, memberships, second_factors, users


@dataclass(frozen=True)
class StaffMember:
    user_id: int
    username: str
    display_name: str
    email: str
    role: str
    treats_patients: bool
    active: bool
    second_factor: bool
    joined_at: datetime


def _query(practice_id: int):
    return (
        select(
            users.c.id, users.c.username, users.c.display_name, users.c.email, memberships.c.role,
            memberships.c.treats_patients, memberships.c.deactivated_at, memberships.c.created_at, second_factors.c.secret,
        )
        .join(memberships, memberships.c.user_id == users.c.id)
        .outerjoin(second_factors, second_factors.c.user_id == users.c.id)
        .where(memberships.c.practice_id == practice_id, memberships.c.role.in_(STAFF_ROLES))
    )


def _member(row) -> StaffMember:
    return StaffMember(
        user_id=row.id, username=row.username, display_name=row.display_name, email=row.email, role=row.role,
        treats_patients=row.treats_patients, active=row.deactivated_at is None, second_factor=row.secret is not None, joined_at=row.created_at,
    )


async def staff_of(conn: AsyncConnection, practice_id: int) -> list[StaffMember]:
    query = _query(practice_id).order_by(users.c.display_name, users.c.id)
    return [_member(row) for row in await conn.execute(query)]


async def staff_member(conn: AsyncConnection, practice_id: int, user_id: int) -> StaffMember | None:
    """The user if they are staff of this practice; None for anyone else."""
    row = (await conn.execute(_query(practice_id).where(users.c.id == user_id))).first()
    return None if row is None else _member(row)


async def count_active(conn: AsyncConnection, practice_id: int, role: str) -> int:
    query = select(func.count()).where(
        memberships.c.practice_id == practice_id, memberships.c.role == role, memberships.c.deactivated_at.is_(None)
    )
    return (await conn.execute(query)).scalar_one()


async def count_treating(conn: AsyncConnection, practice_id: int) -> int:
    """Active members who treat patients: the seats in use."""
    query = select(func.count()).where(
        memberships.c.practice_id == practice_id, memberships.c.treats_patients.is_(True),
        memberships.c.deactivated_at.is_(None),
    )
    return (await conn.execute(query)).scalar_one()


async def set_role(conn: AsyncConnection, practice_id: int, user_id: int, role: str, treats_patients: bool) -> None:
    await conn.execute(
        update(memberships)
        .where(memberships.c.practice_id == practice_id, memberships.c.user_id == user_id)
        .values(role=role, treats_patients=treats_patients)
    )


async def set_deactivated(conn: AsyncConnection, practice_id: int, user_id: int, when: datetime | None) -> None:
    await conn.execute(
        update(memberships)
        .where(memberships.c.practice_id == practice_id, memberships.c.user_id == user_id)
        .values(deactivated_at=when)
    )


async def active_staff_ids(conn: AsyncConnection, practice_id: int) -> list[int]:
    query = select(memberships.c.user_id).where(
        memberships.c.practice_id == practice_id, memberships.c.role.in_(STAFF_ROLES),
        memberships.c.deactivated_at.is_(None),
    )
    return list((await conn.execute(query)).scalars())
