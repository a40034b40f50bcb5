"""Invitations of new staff by email, found by the hash of their link token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.rows import new_id
from smartpractice.storage.tables import practices, staff_invitations


@dataclass(frozen=True)
class StaffInvitation:
    id: int
    practice_id: int
    practice_name: str
    email: str
    role: str
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None


def _query():
    return select(staff_invitations, practices.c.name.label("practice_name")).join(
        practices, practices.c.id == staff_invitations.c.practice_id
    )


def _invitation(row) -> StaffInvitation:
    return StaffInvitation(
        id=row.id, practice_id=row.practice_id, practice_name=row.practice_name, email=row.email, role=row.role,
        created_at=row.created_at, expires_at=row.expires_at, accepted_at=row.accepted_at, revoked_at=row.revoked_at,
    )


async def insert_invitation(
    conn: AsyncConnection, *, practice_id: int, invited_by: int, email: str, role: str, token_hash: str,
    now: datetime, expires_at: datetime,
) -> int:
    result = await conn.execute(
        insert(staff_invitations).values(
            practice_id=practice_id, invited_by=invited_by, email=email, role=role, token_hash=token_hash,
            created_at=now, expires_at=expires_at,
        )
    )
    return new_id(result)


async def by_token_hash(conn: AsyncConnection, token_hash: str) -> StaffInvitation | None:
    row = (await conn.execute(_query().where(staff_invitations.c.token_hash == token_hash))).first()
    return None if row is None else _invitation(row)


def _open(practice_id: int, now: datetime):
    return (
        staff_invitations.c.practice_id == practice_id,
        staff_invitations.c.accepted_at.is_(None),
        staff_invitations.c.revoked_at.is_(None),
        staff_invitations.c.expires_at > now,
    )


async def open_invitations(conn: AsyncConnection, practice_id: int, now: datetime) -> list[StaffInvitation]:
    query = _query().where(*_open(practice_id, now)).order_by(staff_invitations.c.created_at.desc())
    return [_invitation(row) for row in await conn.execute(query)]


async def count_open(conn: AsyncConnection, practice_id: int, role: str, now: datetime) -> int:
    query = select(func.count()).where(*_open(practice_id, now), staff_invitations.c.role == role)
    return (await conn.execute(query)).scalar_one()


async def revoke(conn: AsyncConnection, practice_id: int, invitation_id: int, now: datetime) -> bool:
    """Revoke one of the practice's open invitations; False if it has no such one."""
    result = await conn.execute(
        update(staff_invitations)
        .where(staff_invitations.c.id == invitation_id, *_open(practice_id, now))
        .values(revoked_at=now)
    )
    return result.rowcount == 1


async def mark_accepted(conn: AsyncConnection, invitation_id: int, now: datetime) -> bool:
    result = await conn.execute(
        update(staff_invitations)
        .where(staff_invitations.c.id == invitation_id, staff_invitations.c.accepted_at.is_(None))
        .values(accepted_at=now)
    )
    return result.rowcount == 1
