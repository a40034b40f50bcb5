"""The waiting room's socket protocol, version 1 (docs/signalling.md, message by message).

Two kinds of connection: a waiting person's (`WaitingConnection`), told when they are let
in, of the practice's short texts and of the end; and the practice's live list
(`PracticeConnection`), from which staff admit and write. Both start with `join`, which
carries the version, like the call's protocol (rooms/call_protocol.py) beside it.
"""

from __future__ import annotations

import logging

from smartpractice.errors import UserError
from smartpractice.rooms.protocol import (
    CLOSE_ENDED,
    CLOSE_NORMAL,
    JOIN,
    Connection,
    Schema,
    Send,
    Translate,
    integer,
    participant,
    text,
)
from smartpractice.rooms.state import RoomsUnavailable
from smartpractice.rooms.waiting_room import MESSAGE_LIMIT, Seat, WaitingRoom
from smartpractice.scheduling.consultations import Consultations
from smartpractice.times import local

logger = logging.getLogger(__name__)

VERSION = 1
MESSAGE_BYTES = 4096
# Staff click; nobody needs more than a few messages a second.
RATE_PER_SECOND = 5.0
RATE_BURST = 20

WAITING_SCHEMA: Schema = {"join": JOIN}
PRACTICE_SCHEMA: Schema = {
    "join": JOIN,
    "admit": {"consultation": integer, "participant": participant},
    "admit_all": {"consultation": integer},
    # Longer texts are refused by the waiting room with a message that says the limit.
    "message": {"consultation": integer, "participant": participant, "text": text(MESSAGE_LIMIT * 4)},
}


class WaitingConnection(Connection):
    """A waiting person's line to the practice."""

    schema, version, rate = WAITING_SCHEMA, VERSION, (RATE_PER_SECOND, RATE_BURST)

    def __init__(self, *, seat: Seat, room: WaitingRoom, consultations: Consultations, send: Send,
                 translate: Translate) -> None:
        super().__init__(send=send, translate=translate)
        self.seat = seat
        self._room = room
        self._consultations = consultations
        self._waiting = False

    async def _joined(self) -> int | None:
        try:
            await self._room.check_open(self.seat, reread=True)  # the seat was read when the socket opened
        except UserError as error:
            await self._send({"type": "closed", "code": error.code, "message": self._translate(error)})
            return CLOSE_NORMAL
        if await self._room.is_admitted(self.seat):
            await self._send({"type": "admitted"})
            return CLOSE_NORMAL
        policy = await self._consultations.policy(self.seat.consultation.practice_id)
        if self._room.opens_at(self.seat, policy.join_window_minutes) is not None:
            await self._send({"type": "not_open"})
            return CLOSE_NORMAL
        self._waiting = True
        await self._room.enter(self.seat)
        await self._send({"type": "waiting", "version": VERSION})
        return None

    async def deliver(self, news: dict) -> int | None:
        """News for this person (admitted, a text, the end); a close code when it ends the line."""
        if not self._waiting:
            return None
        await self._send(news)
        if news["type"] == "ended":
            return CLOSE_ENDED
        return CLOSE_NORMAL if news["type"] == "admitted" else None

    async def closed(self) -> None:
        if self._waiting:
            self._waiting = False
            try:
                await self._room.leave(self.seat)
            except RoomsUnavailable:
                logger.warning("room state unreachable: consultation %s keeps a waiting person who left",
                               self.seat.consultation.id)


class PracticeConnection(Connection):
    """Staff's live list of everyone waiting in the practice, and their commands."""

    schema, version, rate = PRACTICE_SCHEMA, VERSION, (RATE_PER_SECOND, RATE_BURST)

    def __init__(self, *, practice_id: int, actor: int, room: WaitingRoom, consultations: Consultations,
                 send: Send, translate: Translate) -> None:
        super().__init__(send=send, translate=translate)
        self._practice_id = practice_id
        self._actor = actor
        self._room = room
        self._consultations = consultations

    async def _joined(self) -> None:
        await self._send(await self._snapshot())

    async def deliver(self, news: dict) -> None:
        """Someone arrived, left or was let in: the whole list again, as it is now."""
        if self.joined:
            try:
                snapshot = await self._snapshot()
            except RoomsUnavailable as error:
                await self._error(error)
                return
            await self._send(snapshot)

    async def closed(self) -> None:
        """Watching the list leaves nothing behind."""

    async def _snapshot(self) -> dict:
        waiting = await self._room.waiting(self._practice_id)
        zone, found = await self._consultations.headlines(self._practice_id, {p.consultation_id for p in waiting})
        titles = {c.id: f"{local(c.starts_at, zone):%H:%M} {c.title}".strip() for c in found}
        people = [{"consultation": person.consultation_id, "participant": person.key, "name": person.name,
                   "since": person.since.isoformat(), "title": titles[person.consultation_id]}
                  for person in waiting]
        return {"type": "waiting", "people": people}

    async def _on_admit(self, message: dict) -> None:
        await self._room.admit(self._practice_id, message["consultation"], message["participant"], actor=self._actor)

    async def _on_admit_all(self, message: dict) -> None:
        await self._room.admit(self._practice_id, message["consultation"], None, actor=self._actor)

    async def _on_message(self, message: dict) -> None:
        await self._room.tell(self._practice_id, message["consultation"], message["participant"], message["text"])
