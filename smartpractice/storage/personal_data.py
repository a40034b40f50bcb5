"""What the service holds about one person (GDPR art. 15 and 20), and its erasure (art. 17).
`practice_id` narrows a query to one practice: what a practice admin may see or remove."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.tables import (
    attendances,
    audit_log,
    calls,
    consultations,
    invitations,
    login_sessions,
    mails,
    memberships,
    participants,
    practices,
    staff_invitations,
    users,
)


def _rows(result) -> list[dict]:
    return [dict(row._mapping) for row in result]


def _in_practice(column, practice_id: int | None):
    return column == practice_id if practice_id is not None else true()


async def account(conn: AsyncConnection, user_id: int) -> dict | None:
    query = select(users.c.username, users.c.email, users.c.pending_email, users.c.display_name, users.c.language,
                   users.c.date_of_birth, users.c.created_at, users.c.email_confirmed_at,
                   users.c.password_changed_at).where(users.c.id == user_id)
    row = (await conn.execute(query)).first()
    return dict(row._mapping) if row else None


async def practices_of(conn: AsyncConnection, user_id: int, practice_id: int | None = None) -> list[dict]:
    query = (select(practices.c.name.label("practice"), memberships.c.role, memberships.c.treats_patients,
                    memberships.c.created_at.label("since"),
                    memberships.c.deactivated_at)
             .join(practices, practices.c.id == memberships.c.practice_id)
             .where(memberships.c.user_id == user_id, _in_practice(memberships.c.practice_id, practice_id))
             .order_by(memberships.c.id))
    return _rows(await conn.execute(query))


async def practices_only_admined_by(conn: AsyncConnection, user_id: int) -> list[str]:
    """Names of the practices whose one active admin this user is."""
    others = memberships.alias("others")
    admins = (select(func.count()).where(others.c.practice_id == memberships.c.practice_id,
                                         others.c.role == "admin", others.c.deactivated_at.is_(None))
              .scalar_subquery())
    query = (select(practices.c.name).join(practices, practices.c.id == memberships.c.practice_id)
             .where(memberships.c.user_id == user_id, memberships.c.role == "admin",
                    memberships.c.deactivated_at.is_(None), admins == 1)
             .order_by(practices.c.name))
    return list((await conn.execute(query)).scalars())


async def consultations_of(conn: AsyncConnection, user_id: int, emails: Sequence[str],
                           practice_id: int | None = None) -> list[dict]:
    """As a patient with an account, or invited with a TAN to one of their addresses."""
    invited = select(invitations.c.id).where(func.lower(invitations.c.email).in_(emails))
    query = (select(consultations.c.id, practices.c.name.label("practice"), consultations.c.title,
                    consultations.c.starts_at, consultations.c.duration_minutes, consultations.c.state)
             .join(participants, participants.c.consultation_id == consultations.c.id)
             .join(practices, practices.c.id == consultations.c.practice_id)
             .where(or_(participants.c.user_id == user_id, participants.c.invitation_id.in_(invited)),
                    _in_practice(consultations.c.practice_id, practice_id))
             .order_by(consultations.c.starts_at))
    return _rows(await conn.execute(query))


async def consultations_held(conn: AsyncConnection, user_id: int, practice_id: int | None = None) -> list[dict]:
    """Those a clinician holds."""
    query = (select(consultations.c.id, practices.c.name.label("practice"), consultations.c.title,
                    consultations.c.starts_at, consultations.c.duration_minutes, consultations.c.state)
             .join(practices, practices.c.id == consultations.c.practice_id)
             .where(consultations.c.clinician_id == user_id, _in_practice(consultations.c.practice_id, practice_id))
             .order_by(consultations.c.starts_at))
    return _rows(await conn.execute(query))


async def invitations_to(conn: AsyncConnection, emails: Sequence[str], practice_id: int | None = None) -> list[dict]:
    query = (select(practices.c.name.label("practice"), invitations.c.consultation_id, invitations.c.created_at,
                    invitations.c.expires_at, invitations.c.tan_used_at)
             .join(practices, practices.c.id == invitations.c.practice_id)
             .where(func.lower(invitations.c.email).in_(emails), _in_practice(invitations.c.practice_id, practice_id))
             .order_by(invitations.c.id))
    return _rows(await conn.execute(query))


async def attendances_of(conn: AsyncConnection, user_id: int, practice_id: int | None = None) -> list[dict]:
    query = (select(calls.c.consultation_id, attendances.c.role, attendances.c.client_kind, attendances.c.joined_at,
                    attendances.c.left_at)
             .join(calls, calls.c.id == attendances.c.call_id)
             .where(attendances.c.user_id == user_id, _in_practice(calls.c.practice_id, practice_id))
             .order_by(attendances.c.joined_at))
    return _rows(await conn.execute(query))


async def sessions_of(conn: AsyncConnection, user_id: int) -> list[dict]:
    query = (select(login_sessions.c.created_at, login_sessions.c.last_seen_at, login_sessions.c.user_agent)
             .where(login_sessions.c.user_id == user_id).order_by(login_sessions.c.id))
    return _rows(await conn.execute(query))


def _about(user_id: int):
    return or_(audit_log.c.actor_user_id == user_id,
               and_(audit_log.c.object_kind == "user", audit_log.c.object_id == str(user_id)))


async def audit_about(conn: AsyncConnection, user_id: int, practice_id: int | None = None) -> list[dict]:
    query = (select(audit_log.c.created_at, practices.c.name.label("practice"), audit_log.c.action,
                    audit_log.c.object_kind, audit_log.c.object_id,
                    (audit_log.c.actor_user_id == user_id).label("by_them"))
             .outerjoin(practices, practices.c.id == audit_log.c.practice_id)
             .where(_about(user_id), _in_practice(audit_log.c.practice_id, practice_id))
             .order_by(audit_log.c.id))
    return _rows(await conn.execute(query))


async def erase(conn: AsyncConnection, user_id: int, emails: Sequence[str]) -> None:
    """The person's row and everything keyed to it (memberships, sessions, tokens, second
    factor, participations: ON DELETE CASCADE), their TAN invitations and the mails to them.
    Audit entries and attendances keep the fact: the foreign key is set NULL, and entries that
    named the person as their object keep only a number that now points nowhere."""
    await conn.execute(delete(mails).where(func.lower(mails.c.recipient).in_(emails)))
    await conn.execute(delete(invitations).where(func.lower(invitations.c.email).in_(emails)))
    await conn.execute(delete(staff_invitations).where(func.lower(staff_invitations.c.email).in_(emails)))
    await conn.execute(delete(users).where(users.c.id == user_id))


async def erase_from_practice(conn: AsyncConnection, practice_id: int, user_id: int, emails: Sequence[str]) -> None:
    """What one practice holds about a person who stays a patient of another practice."""
    in_practice = select(consultations.c.id).where(consultations.c.practice_id == practice_id)
    await conn.execute(delete(participants).where(participants.c.user_id == user_id,
                                                  participants.c.consultation_id.in_(in_practice)))
    await conn.execute(update(attendances).where(
        attendances.c.user_id == user_id,
        attendances.c.call_id.in_(select(calls.c.id).where(calls.c.practice_id == practice_id))).values(user_id=None))
    await conn.execute(delete(invitations).where(invitations.c.practice_id == practice_id,
                                                 func.lower(invitations.c.email).in_(emails)))
    await conn.execute(delete(memberships).where(memberships.c.practice_id == practice_id,
                                                 memberships.c.user_id == user_id))


async def erase_staff_from_practice(conn: AsyncConnection, practice_id: int, user_id: int,
                                    emails: Sequence[str]) -> None:
    """What one practice holds about a staff member who keeps an account for another practice:
    as for a patient, and the consultations they held there and the practice's audit entries
    by them lose the link to them, its staff invitations to their addresses go, and so do their
    login sessions (they log in again for the other practice)."""
    await erase_from_practice(conn, practice_id, user_id, emails)
    await conn.execute(update(consultations).where(consultations.c.practice_id == practice_id,
                                                   consultations.c.clinician_id == user_id).values(clinician_id=None))
    await conn.execute(update(audit_log).where(audit_log.c.practice_id == practice_id,
                                               audit_log.c.actor_user_id == user_id).values(actor_user_id=None))
    await conn.execute(delete(staff_invitations).where(staff_invitations.c.practice_id == practice_id,
                                                       func.lower(staff_invitations.c.email).in_(emails)))
    await conn.execute(delete(login_sessions).where(login_sessions.c.user_id == user_id))


async def other_memberships(conn: AsyncConnection, user_id: int, practice_id: int) -> int:
    query = select(func.count()).select_from(memberships).where(
        memberships.c.user_id == user_id, memberships.c.practice_id != practice_id)
    return (await conn.execute(query)).scalar_one()


async def practice_ids_of(conn: AsyncConnection, user_id: int) -> list[int]:
    query = select(memberships.c.practice_id).where(memberships.c.user_id == user_id)
    return list((await conn.execute(query)).scalars())


async def sole_members(conn: AsyncConnection, practice_id: int) -> list[tuple[int, list[str]]]:
    """Members of the practice who belong to no other one (and are not the operator), with
    their addresses: deleting the practice deletes them."""
    others = select(memberships.c.user_id).where(memberships.c.practice_id != practice_id)
    query = (select(users.c.id, users.c.email, users.c.pending_email)
             .join(memberships, memberships.c.user_id == users.c.id)
             .where(memberships.c.practice_id == practice_id, users.c.id.not_in(others),
                    users.c.is_operator.is_(False)))
    return [(row.id, sorted({a.lower() for a in (row.email, row.pending_email) if a}))
            for row in await conn.execute(query)]


async def delete_practice(conn: AsyncConnection, practice_id: int) -> None:
    """The practice and what hangs off it (ON DELETE CASCADE): memberships, consultations,
    invitations, calls, settings, API keys, its own audit entries."""
    await conn.execute(delete(practices).where(practices.c.id == practice_id))


async def suspended_since(conn: AsyncConnection, practice_id: int) -> datetime | None:
    return (await conn.execute(select(practices.c.suspended_at).where(practices.c.id == practice_id))).scalar()
