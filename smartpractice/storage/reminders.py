"""Which reminder mails have gone out, so that each goes out once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.tables import ConsultationState, consultations, participants, reminders


@dataclass(frozen=True)
class ReminderCandidate:
    participant_id: int
    consultation_id: int
    practice_id: int
    starts_at: datetime
    added_at: datetime
    sent_leads: frozenset[int]


async def candidates(conn: AsyncConnection, now: datetime, horizon: datetime) -> list[ReminderCandidate]:
    """Participants of scheduled consultations starting after now and up to the horizon."""
    query = (
        select(
            participants.c.id,
            consultations.c.id.label("consultation_id"),
            consultations.c.practice_id,
            consultations.c.starts_at,
            participants.c.created_at,
            reminders.c.lead_minutes,
        )
        .join(consultations, consultations.c.id == participants.c.consultation_id)
        .outerjoin(reminders, reminders.c.participant_id == participants.c.id)
        .where(consultations.c.state == ConsultationState.SCHEDULED, consultations.c.starts_at > now,
               consultations.c.starts_at <= horizon)
        .order_by(participants.c.id)
    )
    found: dict[int, ReminderCandidate] = {}
    for row in await conn.execute(query):
        known = found.get(row.id)
        sent = (known.sent_leads if known else frozenset()) | (
            {row.lead_minutes} if row.lead_minutes is not None else set()
        )
        found[row.id] = ReminderCandidate(row.id, row.consultation_id, row.practice_id, row.starts_at,
                                          row.created_at, frozenset(sent))
    return list(found.values())


async def record(conn: AsyncConnection, participant_id: int, leads: list[int], now: datetime) -> None:
    """Raises IntegrityError if another sender recorded one of them first."""
    await conn.execute(
        insert(reminders),
        [{"participant_id": participant_id, "lead_minutes": lead, "sent_at": now} for lead in leads],
    )


async def forget_reminders_of(conn: AsyncConnection, consultation_id: int) -> None:
    """After a new start time, reminders are due again for it."""
    ids = select(participants.c.id).where(participants.c.consultation_id == consultation_id)
    await conn.execute(delete(reminders).where(reminders.c.participant_id.in_(ids)))
