"""Consultations, who takes part in them, and the practice's scheduling policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.rows import new_id
from smartpractice.storage.tables import (
    ConsultationState,
    consultations,
    invitations,
    memberships,
    participants,
    practices,
    users,
)

MAX_DURATION_HOURS = 8


@dataclass(frozen=True)
class SchedulingPolicy:
    time_zone: str
    consultation_minutes: int
    join_window_minutes: int
    max_participants: int
    relay_policy: str  # "p2p": peer to peer for two; "relay": always through the relay
    e2ee_policy: str  # "require" or "allow_transport" (docs/e2ee.md)


@dataclass(frozen=True)
class Consultation:
    id: int
    practice_id: int
    clinician_id: int | None
    title: str
    starts_at: datetime
    duration_minutes: int
    state: str
    uid: str
    sequence: int

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.duration_minutes)


@dataclass(frozen=True)
class Participant:
    id: int
    consultation_id: int
    user_id: int | None
    invitation_id: int | None
    display_name: str
    email: str
    language: str | None


def _consultation(row) -> Consultation:
    return Consultation(
        id=row.id,
        practice_id=row.practice_id,
        clinician_id=row.clinician_id,
        title=row.title,
        starts_at=row.starts_at,
        duration_minutes=row.duration_minutes,
        state=row.state,
        uid=row.uid,
        sequence=row.sequence,
    )


async def policy_of(conn: AsyncConnection, practice_id: int) -> SchedulingPolicy:
    row = (
        await conn.execute(
            select(
                practices.c.time_zone,
                practices.c.consultation_minutes,
                practices.c.join_window_minutes,
                practices.c.max_participants,
                practices.c.relay_policy,
                practices.c.e2ee_policy,
            ).where(practices.c.id == practice_id)
        )
    ).one()
    return SchedulingPolicy(*row)


async def insert_consultation(
    conn: AsyncConnection,
    *,
    practice_id: int,
    clinician_id: int | None,
    title: str,
    starts_at: datetime,
    duration_minutes: int,
    uid: str,
    now: datetime,
) -> int:
    result = await conn.execute(
        insert(consultations).values(
            practice_id=practice_id,
            clinician_id=clinician_id,
            title=title,
            starts_at=starts_at,
            duration_minutes=duration_minutes,
            state=ConsultationState.SCHEDULED,
            uid=uid,
            sequence=0,
            created_at=now,
            updated_at=now,
        )
    )
    return new_id(result)


async def consultation_of(conn: AsyncConnection, practice_id: int, consultation_id: int) -> Consultation | None:
    query = select(consultations).where(
        consultations.c.id == consultation_id, consultations.c.practice_id == practice_id
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _consultation(row)


async def consultations_of(conn: AsyncConnection, practice_id: int, ids: set[int]) -> list[Consultation]:
    if not ids:
        return []
    query = select(consultations).where(consultations.c.practice_id == practice_id, consultations.c.id.in_(ids))
    return [_consultation(row) for row in await conn.execute(query)]


async def consultation_by_id(conn: AsyncConnection, consultation_id: int) -> Consultation | None:
    row = (await conn.execute(select(consultations).where(consultations.c.id == consultation_id))).first()
    return None if row is None else _consultation(row)


async def reschedule(
    conn: AsyncConnection, consultation_id: int, *, title: str, starts_at: datetime, duration_minutes: int, now: datetime
) -> None:
    await conn.execute(
        update(consultations)
        .where(consultations.c.id == consultation_id)
        .values(
            title=title,
            starts_at=starts_at,
            duration_minutes=duration_minutes,
            sequence=consultations.c.sequence + 1,
            updated_at=now,
        )
    )


async def set_state(
    conn: AsyncConnection, consultation_id: int, state: str, now: datetime, *, only_from: tuple[str, ...]
) -> bool:
    """Move to `state` if the consultation is in one of `only_from`; False if it was not."""
    values: dict = {"state": state, "updated_at": now}
    if state == ConsultationState.CANCELLED:
        values["sequence"] = consultations.c.sequence + 1
    result = await conn.execute(
        update(consultations)
        .where(consultations.c.id == consultation_id, consultations.c.state.in_(only_from))
        .values(**values)
    )
    return result.rowcount == 1


async def consultations_between(
    conn: AsyncConnection, practice_id: int, start: datetime, end: datetime, *, clinician_id: int | None = None
) -> list[Consultation]:
    query = select(consultations).where(
        consultations.c.practice_id == practice_id,
        consultations.c.starts_at >= start,
        consultations.c.starts_at < end,
    )
    if clinician_id is not None:
        query = query.where(consultations.c.clinician_id == clinician_id)
    return [_consultation(row) for row in await conn.execute(query.order_by(consultations.c.starts_at))]


async def upcoming_for_user(
    conn: AsyncConnection, practice_id: int, user_id: int, ends_after: datetime
) -> list[Consultation]:
    """A patient's consultations in a practice that have not ended yet."""
    query = (
        select(consultations)
        .join(participants, participants.c.consultation_id == consultations.c.id)
        .where(
            consultations.c.practice_id == practice_id,
            participants.c.user_id == user_id,
            consultations.c.state.in_((ConsultationState.SCHEDULED, ConsultationState.RUNNING)),
            # The end is start + duration; the longest allowed duration bounds the search.
            consultations.c.starts_at > ends_after - timedelta(hours=MAX_DURATION_HOURS),
        )
        .order_by(consultations.c.starts_at)
    )
    rows = [_consultation(row) for row in await conn.execute(query)]
    return [c for c in rows if c.ends_at > ends_after]


async def insert_participant(
    conn: AsyncConnection, consultation_id: int, now: datetime, *, user_id: int | None = None,
    invitation_id: int | None = None,
) -> int:
    result = await conn.execute(
        insert(participants).values(
            consultation_id=consultation_id, user_id=user_id, invitation_id=invitation_id, created_at=now
        )
    )
    return new_id(result)


def _participants():
    return (
        select(
            participants.c.id,
            participants.c.consultation_id,
            participants.c.user_id,
            participants.c.invitation_id,
            func.coalesce(users.c.display_name, invitations.c.display_name).label("display_name"),
            func.coalesce(users.c.email, invitations.c.email).label("email"),
            func.coalesce(users.c.language, invitations.c.language).label("language"),
        )
        .select_from(participants)
        .outerjoin(users, users.c.id == participants.c.user_id)
        .outerjoin(invitations, invitations.c.id == participants.c.invitation_id)
    )


async def participants_of(conn: AsyncConnection, consultation_id: int) -> list[Participant]:
    return (await participants_of_each(conn, [consultation_id]))[consultation_id]


async def participants_of_each(conn: AsyncConnection, consultation_ids: list[int]) -> dict[int, list[Participant]]:
    """The participants of several consultations in one query, by consultation."""
    found: dict[int, list[Participant]] = {consultation_id: [] for consultation_id in consultation_ids}
    if consultation_ids:
        query = (_participants().where(participants.c.consultation_id.in_(consultation_ids))
                 .order_by(participants.c.id))
        for row in await conn.execute(query):
            found[row.consultation_id].append(Participant(**row._mapping))
    return found


async def participant(conn: AsyncConnection, participant_id: int) -> Participant | None:
    row = (await conn.execute(_participants().where(participants.c.id == participant_id))).first()
    return None if row is None else Participant(**row._mapping)


async def patient_of(conn: AsyncConnection, practice_id: int, user_id: int) -> bool:
    """True when the user is a patient of this practice (and so may be a participant)."""
    query = select(memberships.c.id).where(
        memberships.c.practice_id == practice_id,
        memberships.c.user_id == user_id,
        memberships.c.role == "patient",
    )
    return (await conn.execute(query)).first() is not None


async def participant_in(conn: AsyncConnection, consultation_id: int, *, user_id: int | None = None,
                         invitation_id: int | None = None) -> Participant | None:
    """This user or invitation as a participant of the consultation, if they are one."""
    condition = (
        participants.c.user_id == user_id if user_id is not None else participants.c.invitation_id == invitation_id
    )
    row = (await conn.execute(_participants().where(participants.c.consultation_id == consultation_id,
                                                    condition))).first()
    return None if row is None else Participant(**row._mapping)
