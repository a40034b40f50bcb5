"""Session metadata: when a consultation's call ran, and who was in it when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.rows import new_id
from smartpractice.storage.tables import ConsultationState, attendances, calls, consultations


@dataclass(frozen=True)
class PastCall:
    consultation_id: int
    title: str
    started_at: datetime
    ended_at: datetime | None

    @property
    def seconds(self) -> int | None:
        return None if self.ended_at is None else int((self.ended_at - self.started_at).total_seconds())


async def open_call_id(conn: AsyncConnection, consultation_id: int) -> int | None:
    query = select(calls.c.id).where(calls.c.consultation_id == consultation_id, calls.c.ended_at.is_(None))
    return (await conn.execute(query)).scalar_one_or_none()


async def start_call(conn: AsyncConnection, practice_id: int, consultation_id: int, now: datetime) -> int:
    result = await conn.execute(
        insert(calls).values(practice_id=practice_id, consultation_id=consultation_id, started_at=now)
    )
    return new_id(result)


async def end_call(conn: AsyncConnection, consultation_id: int, now: datetime) -> None:
    open_calls = calls.c.consultation_id == consultation_id, calls.c.ended_at.is_(None)
    ids = select(calls.c.id).where(*open_calls)
    await conn.execute(
        update(attendances).where(attendances.c.call_id.in_(ids), attendances.c.left_at.is_(None)).values(left_at=now)
    )
    await conn.execute(update(calls).where(*open_calls).values(ended_at=now))


async def add_attendance(
    conn: AsyncConnection, call_id: int, *, user_id: int | None, invitation_id: int | None, role: str,
    client_kind: str, now: datetime,
) -> int:
    result = await conn.execute(
        insert(attendances).values(
            call_id=call_id, user_id=user_id, invitation_id=invitation_id, role=role,
            client_kind=client_kind, joined_at=now,
        )
    )
    return new_id(result)


async def end_attendance(conn: AsyncConnection, attendance_id: int, now: datetime) -> None:
    await conn.execute(
        update(attendances)
        .where(attendances.c.id == attendance_id, attendances.c.left_at.is_(None))
        .values(left_at=now)
    )


async def past_calls(conn: AsyncConnection, practice_id: int, since: datetime, until: datetime) -> list[PastCall]:
    """Calls started between since and until, for billing."""
    query = (
        select(calls.c.consultation_id, consultations.c.title, calls.c.started_at, calls.c.ended_at)
        .join(consultations, consultations.c.id == calls.c.consultation_id)
        .where(calls.c.practice_id == practice_id, calls.c.started_at >= since, calls.c.started_at <= until)
        .order_by(calls.c.started_at.desc())
    )
    return [PastCall(*row) for row in await conn.execute(query)]


async def abandoned_consultations(conn: AsyncConnection, ended_before: datetime) -> list[tuple[int, int]]:
    """(practice, consultation) of running consultations planned to end before `ended_before`
    with nobody left in the call: the clinician closed the tab without ending them."""
    present = (
        select(attendances.c.id)
        .join(calls, calls.c.id == attendances.c.call_id)
        .where(calls.c.consultation_id == consultations.c.id, attendances.c.left_at.is_(None))
    )
    query = select(consultations.c.practice_id, consultations.c.id, consultations.c.starts_at,
                   consultations.c.duration_minutes).where(
        consultations.c.state == ConsultationState.RUNNING,
        consultations.c.starts_at < ended_before,
        ~present.exists(),
    )
    return [
        (row.practice_id, row.id) for row in await conn.execute(query)
        if row.starts_at + timedelta(minutes=row.duration_minutes) < ended_before
    ]
