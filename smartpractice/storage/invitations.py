"""TAN invitations: a link and a one-time code for someone without an account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.rows import new_id
from smartpractice.storage.tables import invitations, login_sessions, practices, users


@dataclass(frozen=True)
class Invitation:
    id: int
    practice_id: int
    invited_by: int | None
    email: str
    display_name: str
    language: str
    tan_hmac: str
    tan_failures: int
    total_failures: int
    created_at: datetime
    expires_at: datetime
    tan_used_at: datetime | None
    locked_at: datetime | None
    revoked_at: datetime | None
    consultation_id: int | None = None
    previous_tan_hmac: str | None = None
    code: str | None = None


def _invitation(row) -> Invitation:
    return Invitation(
        id=row.id,
        practice_id=row.practice_id,
        invited_by=row.invited_by,
        email=row.email,
        display_name=row.display_name,
        language=row.language,
        tan_hmac=row.tan_hmac,
        tan_failures=row.tan_failures,
        total_failures=row.total_failures,
        created_at=row.created_at,
        expires_at=row.expires_at,
        tan_used_at=row.tan_used_at,
        locked_at=row.locked_at,
        revoked_at=row.revoked_at,
        consultation_id=row.consultation_id,
        previous_tan_hmac=row.previous_tan_hmac,
        code=row.code,
    )


async def insert_invitation(
    conn: AsyncConnection,
    *,
    practice_id: int,
    invited_by: int | None,
    email: str,
    display_name: str,
    language: str,
    link_hash: str,
    tan_hmac: str,
    now: datetime,
    expires_at: datetime,
    consultation_id: int | None = None,
    code: str | None = None,
) -> int:
    result = await conn.execute(
        insert(invitations).values(
            practice_id=practice_id,
            invited_by=invited_by,
            email=email,
            display_name=display_name,
            language=language,
            link_hash=link_hash,
            tan_hmac=tan_hmac,
            tan_failures=0,
            total_failures=0,
            created_at=now,
            expires_at=expires_at,
            consultation_id=consultation_id,
            code=code,
        )
    )
    return new_id(result)


async def invitation_of(conn: AsyncConnection, practice_id: int, invitation_id: int) -> Invitation | None:
    query = select(invitations).where(invitations.c.id == invitation_id, invitations.c.practice_id == practice_id)
    row = (await conn.execute(query)).first()
    return None if row is None else _invitation(row)


async def invitation_by_id(conn: AsyncConnection, invitation_id: int) -> Invitation | None:
    row = (await conn.execute(select(invitations).where(invitations.c.id == invitation_id))).first()
    return None if row is None else _invitation(row)


async def invitation_by_link(conn: AsyncConnection, link_hash: str) -> Invitation | None:
    row = (await conn.execute(select(invitations).where(invitations.c.link_hash == link_hash))).first()
    return None if row is None else _invitation(row)


async def invitation_by_code(conn: AsyncConnection, code: str) -> Invitation | None:
    row = (await conn.execute(select(invitations).where(invitations.c.code == code))).first()
    return None if row is None else _invitation(row)


async def code_taken(conn: AsyncConnection, code: str) -> bool:
    query = select(invitations.c.id).where(invitations.c.code == code)
    return (await conn.execute(query)).first() is not None


async def invitation_by_previous_link(conn: AsyncConnection, link_hash: str) -> Invitation | None:
    """The invitation whose newer mail replaced the link with this hash."""
    query = select(invitations).where(invitations.c.previous_link_hash == link_hash)
    row = (await conn.execute(query)).first()
    return None if row is None else _invitation(row)


async def invitations_of(conn: AsyncConnection, practice_id: int, limit: int = 200) -> list[Invitation]:
    query = (
        select(invitations)
        .where(invitations.c.practice_id == practice_id)
        .order_by(invitations.c.created_at.desc(), invitations.c.id.desc())
        .limit(limit)
    )
    return [_invitation(row) for row in await conn.execute(query)]


async def count_tan_failure(conn: AsyncConnection, invitation_id: int, now: datetime, *,
                            max_total: int) -> tuple[int, int]:
    """One more wrong TAN, counted in one statement, which also locks the invitation at
    `max_total` wrong TANs in all; returns the failures of this TAN and of the invitation."""
    total = invitations.c.total_failures + 1
    result = await conn.execute(
        update(invitations)
        .where(invitations.c.id == invitation_id)
        .values(tan_failures=invitations.c.tan_failures + 1, total_failures=total,
                locked_at=case((total >= max_total, func.coalesce(invitations.c.locked_at, now)),
                               else_=invitations.c.locked_at))
        .returning(invitations.c.tan_failures, invitations.c.total_failures)
    )
    failures, total_failures = result.one()
    return failures, total_failures


async def use_tan(conn: AsyncConnection, invitation_id: int, now: datetime, *, max_failures: int) -> bool:
    """Spend the TAN; False if it was spent, voided by wrong tries (or locked) meanwhile."""
    result = await conn.execute(
        update(invitations)
        .where(
            invitations.c.id == invitation_id,
            invitations.c.tan_used_at.is_(None),
            invitations.c.tan_failures < max_failures,
            invitations.c.locked_at.is_(None),
            invitations.c.revoked_at.is_(None),
        )
        .values(tan_used_at=now)
    )
    return result.rowcount == 1


async def revoke(conn: AsyncConnection, invitation_id: int, now: datetime) -> None:
    await conn.execute(
        update(invitations).where(invitations.c.id == invitation_id, invitations.c.revoked_at.is_(None)).values(revoked_at=now)
    )


async def reissue(
    conn: AsyncConnection, invitation_id: int, *, link_hash: str, tan_hmac: str, expires_at: datetime
) -> None:
    """A new link and TAN from the practice; the failures of the old TAN stay in
    total_failures, the old link and TAN are kept to say what replaced them."""
    await conn.execute(
        update(invitations)
        .where(invitations.c.id == invitation_id)
        .values(
            previous_link_hash=invitations.c.link_hash, previous_tan_hmac=invitations.c.tan_hmac,
            link_hash=link_hash, tan_hmac=tan_hmac, expires_at=expires_at, tan_failures=0, tan_used_at=None,
            locked_at=None,
        )
    )


async def replace_tan(conn: AsyncConnection, invitation_id: int, tan_hmac: str) -> bool:
    """A new TAN the guest asked for: the old one stops working; the new one has its own
    tries, while total_failures keeps every wrong TAN; False if the invitation was locked
    or revoked meanwhile."""
    result = await conn.execute(
        update(invitations)
        .where(invitations.c.id == invitation_id, invitations.c.locked_at.is_(None),
               invitations.c.revoked_at.is_(None))
        .values(previous_tan_hmac=invitations.c.tan_hmac, tan_hmac=tan_hmac, tan_used_at=None, tan_failures=0)
    )
    return result.rowcount == 1


async def practice_contact(conn: AsyncConnection, practice_id: int) -> str:
    """How patients reach the practice (phone or mail), as its admins entered it; may be empty."""
    return (await conn.execute(select(practices.c.contact).where(practices.c.id == practice_id))).scalar_one()


async def inviter_and_practice(conn: AsyncConnection, invitation: Invitation) -> tuple[str | None, str]:
    """The inviting clinician's display name (None if invited through the API) and the practice's name."""
    practice = (await conn.execute(select(practices.c.name).where(practices.c.id == invitation.practice_id))).scalar_one()
    if invitation.invited_by is None:
        return None, practice
    name = (await conn.execute(select(users.c.display_name).where(users.c.id == invitation.invited_by))).scalar()
    return name, practice


async def tan_delivery_of(conn: AsyncConnection, practice_id: int) -> str:
    return (await conn.execute(select(practices.c.tan_delivery).where(practices.c.id == practice_id))).scalar_one()


async def set_tan_delivery(conn: AsyncConnection, practice_id: int, delivery: str) -> None:
    await conn.execute(update(practices).where(practices.c.id == practice_id).values(tan_delivery=delivery))


async def set_expiry_of_consultation(conn: AsyncConnection, consultation_id: int, expires_at: datetime) -> None:
    """A rescheduled consultation moves the end of its guests' TANs with it."""
    await conn.execute(
        update(invitations).where(invitations.c.consultation_id == consultation_id).values(expires_at=expires_at)
    )
    # A guest's session lasts as long as the invitation it came in with.
    guests = select(invitations.c.id).where(invitations.c.consultation_id == consultation_id)
    await conn.execute(
        update(login_sessions).where(login_sessions.c.invitation_id.in_(guests)).values(expires_at=expires_at)
    )
