"""Reminder mails a set time before a consultation starts, each once, across restarts."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.clock import Clock
from smartpractice.scheduling.consultations import Consultations
from smartpractice.storage import consultations as consultation_store
from smartpractice.storage import reminders as store
from smartpractice.storage.practices import practice_name

log = logging.getLogger(__name__)


class Reminders:
    def __init__(self, *, engine: AsyncEngine, clock: Clock, consultations: Consultations,
                 leads_minutes: tuple[int, ...]) -> None:
        self._engine = engine
        self._clock = clock
        self._consultations = consultations
        self._leads = leads_minutes

    async def send_due(self) -> int:
        """Queue the reminders that are due; returns how many mails were queued."""
        if not self._leads:
            return 0
        now = self._clock.now()
        async with self._engine.connect() as conn:
            found = await store.candidates(conn, now, now + timedelta(minutes=max(self._leads)))
        queued = 0
        for candidate in found:
            # A lead counts only if the person was already invited at that moment: whoever
            # is added 20 minutes before the start has just had a mail, not an hour's notice.
            due = [
                lead for lead in self._leads
                if lead not in candidate.sent_leads
                and candidate.starts_at - timedelta(minutes=lead) <= now
                and candidate.added_at <= candidate.starts_at - timedelta(minutes=lead)
            ]
            if due and await self._remind(candidate, due):
                queued += 1
        return queued

    async def _remind(self, candidate: store.ReminderCandidate, due: list[int]) -> bool:
        """One mail for all leads that are due at once (e.g. after the server was down)."""
        try:
            async with self._engine.begin() as conn:
                await store.record(conn, candidate.participant_id, due, self._clock.now())
                consultation = await consultation_store.consultation_by_id(conn, candidate.consultation_id)
                participant = await consultation_store.participant(conn, candidate.participant_id)
                # Both were read by the candidates' query; nothing deletes them within this
                # transaction but the purge, which skips what is still ahead.
                assert consultation is not None and participant is not None
                await self._consultations.mail_reminder(
                    conn, consultation, participant, await practice_name(conn, candidate.practice_id)
                )
        except IntegrityError:
            log.info("reminder for participant %d was sent by another runner", candidate.participant_id)
            return False
        return True
