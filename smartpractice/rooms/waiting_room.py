"""The waiting room: participants wait, the clinician sees them live and lets them in.

Who is waiting lives in the RoomState (memory now, Redis for several instances); what
a practice must keep (the call's start and end, who joined and left when) goes to the
database as metadata. Texts sent to a waiting person are passed on, never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.rooms.state import RoomState, WaitingPerson
from smartpractice.scheduling import lifecycle
from smartpractice.scheduling.lifecycle import CANCELLED, ENDED, Transition
from smartpractice.storage import calls as call_store
from smartpractice.storage import consultations as store
from smartpractice.storage.consultations import Consultation
from smartpractice.storage.practices import treats_patients_in

MESSAGE_LIMIT = 500
ABANDONED_AFTER = timedelta(hours=2)


class NotParticipant(LookupError):
    """This person has no place in that consultation (404, whatever the reason)."""


@dataclass(frozen=True)
class Seat:
    """One person's place in one consultation."""

    consultation: Consultation
    key: str
    name: str
    role: str  # patient, guest, clinician
    user_id: int | None = None
    invitation_id: int | None = None
    # What the others in the call see: never a guest's email address, which `name` may be.
    call_name: str = ""


def practice_channel(practice_id: int) -> str:
    return f"practice:{practice_id}"


def person_channel(consultation_id: int, key: str) -> str:
    return f"person:{consultation_id}:{key}"


def consultation_channel(consultation_id: int) -> str:
    return f"consultation:{consultation_id}"


async def _start_call(conn: AsyncConnection, practice_id: int, consultation_id: int, now: datetime) -> int:
    """The consultation is running from now on, with an open call record: the call id."""
    await lifecycle.move(conn, consultation_id, Transition.START, now)
    call_id = await call_store.open_call_id(conn, consultation_id)
    return call_id if call_id is not None else await call_store.start_call(conn, practice_id, consultation_id, now)


class WaitingRoom:
    def __init__(self, *, engine: AsyncEngine, clock: Clock, state: RoomState, audit: Audit) -> None:
        self._audit = audit
        self._engine = engine
        self._clock = clock
        self.state = state

    async def seat(self, consultation_id: int, *, user_id: int | None = None,
                   invitation_id: int | None = None) -> Seat:
        """The caller's seat: a member of the practice who treats patients (a clinician, or
        an admin who does), a patient on its list, or the guest its invitation was made for.
        Anyone else, an admin who does not treat patients too, gets NotParticipant."""
        async with self._engine.connect() as conn:
            consultation = await store.consultation_by_id(conn, consultation_id)
            if consultation is None:
                raise NotParticipant(consultation_id)
            if user_id is not None and await treats_patients_in(conn, consultation.practice_id, user_id):
                return Seat(consultation, f"u{user_id}", "", "clinician", user_id=user_id)
            participant = await store.participant_in(conn, consultation_id, user_id=user_id,
                                                     invitation_id=invitation_id)
            if participant is None:
                raise NotParticipant(consultation_id)
        if user_id is not None:
            return Seat(consultation, f"u{user_id}", participant.display_name, "patient", user_id=user_id,
                        call_name=participant.display_name)
        return Seat(consultation, f"i{invitation_id}", participant.display_name or participant.email, "guest",
                    invitation_id=invitation_id, call_name=participant.display_name)

    def opens_at(self, seat: Seat, join_window_minutes: int) -> datetime | None:
        """When the waiting room opens for this seat, if that is still ahead."""
        opens = seat.consultation.starts_at - timedelta(minutes=join_window_minutes)
        return opens if self._clock.now() < opens else None

    async def check_open(self, seat: Seat, *, reread: bool = False) -> None:
        """A cancelled or finished consultation turns everyone away with a reason.
        The seat is trusted as read in this request; `reread` for one read earlier."""
        current: Consultation | None = seat.consultation
        if reread:
            async with self._engine.connect() as conn:
                current = await store.consultation_by_id(conn, seat.consultation.id)
        state = current.state if current else CANCELLED
        if state == CANCELLED:
            raise UserError("consultation_cancelled", N_("This consultation was cancelled by the practice."))
        if state == ENDED:
            raise UserError("consultation_ended", N_("This consultation has ended."))

    async def enter(self, seat: Seat) -> None:
        person = WaitingPerson(seat.consultation.id, seat.key, seat.name, self._clock.now())
        await self.state.arrive(seat.consultation.practice_id, person)
        await self._announce(seat.consultation.practice_id)

    async def leave(self, seat: Seat) -> None:
        if await self.state.depart(seat.consultation.practice_id, seat.consultation.id, seat.key):
            await self._announce(seat.consultation.practice_id)

    async def waiting(self, practice_id: int) -> list[WaitingPerson]:
        return await self.state.waiting(practice_id)

    async def admit(self, practice_id: int, consultation_id: int, key: str | None = None, *,
                    actor: int | None = None) -> int:
        """Let one waiting person in, or everyone waiting for this consultation (key None).
        The first admission starts the call: from then on the consultation is running."""
        waiting = [p for p in await self.state.waiting(practice_id)
                   if p.consultation_id == consultation_id and (key is None or p.key == key)]
        if not waiting:
            return 0
        now = self._clock.now()
        async with self._engine.begin() as conn:
            consultation = await store.consultation_of(conn, practice_id, consultation_id)
            if consultation is None or consultation.state not in lifecycle.OPEN:
                return 0
            await _start_call(conn, practice_id, consultation_id, now)
            for _ in waiting:
                await self._audit.record(conn, practice_id, actor, "admitted", "consultation", consultation_id)
        for person in waiting:
            await self.state.admit(practice_id, consultation_id, person.key)
            await self.state.publish(person_channel(consultation_id, person.key), {"type": "admitted"})
        await self._announce(practice_id)
        return len(waiting)

    async def tell(self, practice_id: int, consultation_id: int, key: str, text: str) -> bool:
        text = text.strip()
        if not text or len(text) > MESSAGE_LIMIT:
            raise UserError("message_invalid", N_("Please write a message of at most %(count)d characters."),
                            count=MESSAGE_LIMIT)
        if not any(p.consultation_id == consultation_id and p.key == key
                   for p in await self.state.waiting(practice_id)):
            return False
        await self.state.publish(person_channel(consultation_id, key), {"type": "message", "text": text})
        return True

    async def is_admitted(self, seat: Seat) -> bool:
        return seat.role == "clinician" or await self.state.is_admitted(seat.consultation.id, seat.key)

    async def end(self, practice_id: int, consultation_id: int, *, actor: int | None = None) -> bool:
        """The clinician ends the consultation: the call record closes, everyone is told."""
        now = self._clock.now()
        async with self._engine.begin() as conn:
            if await store.consultation_of(conn, practice_id, consultation_id) is None:
                return False
            if await lifecycle.move(conn, consultation_id, Transition.END, now):
                await self._audit.record(conn, practice_id, actor, "consultation_ended", "consultation", consultation_id)
            await call_store.end_call(conn, consultation_id, now)
        await self.state.clear(practice_id, consultation_id)
        await self.state.publish(consultation_channel(consultation_id), {"type": "ended"})
        await self._announce(practice_id)
        return True

    async def joined_call(self, seat: Seat, client_kind: str) -> int | None:
        """Record who came into the call when; None when no call is running."""
        async with self._engine.begin() as conn:
            call_id = await call_store.open_call_id(conn, seat.consultation.id)
            if call_id is None:
                if seat.role != "clinician":
                    return None
                call_id = await _start_call(conn, seat.consultation.practice_id, seat.consultation.id,
                                            self._clock.now())
            return await call_store.add_attendance(
                conn, call_id, user_id=seat.user_id, invitation_id=seat.invitation_id, role=seat.role,
                client_kind=client_kind, now=self._clock.now(),
            )

    async def left_call(self, attendance_id: int) -> None:
        async with self._engine.begin() as conn:
            await call_store.end_attendance(conn, attendance_id, self._clock.now())

    async def end_abandoned(self) -> int:
        """End running consultations nobody is in any more, ABANDONED_AFTER past their planned
        end, so that their records close and the purge can reach them in time."""
        async with self._engine.connect() as conn:
            found = await call_store.abandoned_consultations(conn, self._clock.now() - ABANDONED_AFTER)
        for practice_id, consultation_id in found:
            await self.end(practice_id, consultation_id)
        return len(found)

    async def practice_of(self, consultation_id: int) -> int | None:
        async with self._engine.connect() as conn:
            consultation = await store.consultation_by_id(conn, consultation_id)
        return consultation.practice_id if consultation else None

    async def announce(self, practice_id: int) -> None:
        """The practice's live lists show the waiting room again, as it is now."""
        await self._announce(practice_id)

    async def _announce(self, practice_id: int) -> None:
        await self.state.publish(practice_channel(practice_id), {"type": "waiting"})
