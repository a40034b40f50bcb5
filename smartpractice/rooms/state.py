"""Where waiting rooms keep who is waiting and who was let in, and how news travels.

One small interface: `InMemoryRoomState` serves one server process; `RedisRoomState`
(rooms/redis_state.py) lets several instances behind a load balancer share the rooms.
Nothing here is a module global: the app owns its instance.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, cast

from smartpractice.errors import UserError
from smartpractice.i18n import N_

# Far more than any client needs; a subscriber this far behind is gone or stuck.
QUEUE_LIMIT = 256


@dataclass(frozen=True)
class WaitingPerson:
    consultation_id: int
    key: str  # "u<user id>" or "i<invitation id>": a participant, never a name
    name: str
    since: datetime
    connections: int = 1


@dataclass(frozen=True)
class CallPeer:
    """Someone in a call, as the others see them."""

    key: str
    name: str
    role: str
    session: str  # one per connection: a reload or a second tab is a new session
    state: str = "connected"  # or "reconnecting": the connection dropped, a seat is kept
    audio: bool = True
    video: bool = True


class RoomsUnavailable(UserError):
    """The shared room state (Redis) cannot be reached: nobody can wait or join a call now."""

    status = 503

    def __init__(self) -> None:
        super().__init__("rooms_unavailable",
                         N_("Waiting rooms and calls are unavailable at the moment. Please try again in a minute."))


@dataclass(frozen=True)
class Expired:
    """What vanished because the instance that held it stopped without a word: the
    practices whose waiting list lost someone, the calls in which someone is now
    reconnecting or gone."""

    practices: tuple[int, ...] = ()
    calls: tuple[int, ...] = ()


ExpiryListener = Callable[[Expired], Awaitable[None]]


class RoomState(Protocol):
    async def arrive(self, practice_id: int, person: WaitingPerson) -> None: ...

    async def depart(self, practice_id: int, consultation_id: int, key: str) -> bool: ...

    async def waiting(self, practice_id: int) -> list[WaitingPerson]: ...

    async def admit(self, practice_id: int, consultation_id: int, key: str) -> None: ...

    async def is_admitted(self, consultation_id: int, key: str) -> bool: ...

    async def clear(self, practice_id: int, consultation_id: int) -> None: ...

    async def join_call(self, consultation_id: int, peer: CallPeer) -> None: ...

    async def update_call_peer(self, consultation_id: int, key: str, session: str, **changes: object) -> bool: ...

    async def leave_call(self, consultation_id: int, key: str, session: str) -> bool: ...

    async def call_peers(self, consultation_id: int) -> list[CallPeer]: ...

    async def force_relay(self, consultation_id: int) -> None: ...

    async def relay_forced(self, consultation_id: int) -> bool: ...

    async def publish(self, channel: str, message: dict) -> None: ...

    def subscribe(self, *channels: str) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[dict]]: ...

    def on_expired(self, listener: ExpiryListener) -> None: ...

    async def ready(self) -> bool: ...


class InMemoryRoomState:
    def __init__(self) -> None:
        self._waiting: dict[int, dict[tuple[int, str], WaitingPerson]] = {}
        self._admitted: dict[int, set[str]] = {}
        self._subscribers: dict[str, set[asyncio.Queue[dict]]] = {}
        self._calls: dict[int, dict[str, CallPeer]] = {}
        self._forced_relay: set[int] = set()

    def on_expired(self, listener: ExpiryListener) -> None:
        """Nothing expires here: what one process holds goes with it."""

    async def ready(self) -> bool:
        return True

    async def arrive(self, practice_id: int, person: WaitingPerson) -> None:
        """A second tab of the same person counts once, keeping the earlier arrival."""
        room = self._waiting.setdefault(practice_id, {})
        slot = (person.consultation_id, person.key)
        known = room.get(slot)
        room[slot] = person if known is None else WaitingPerson(
            known.consultation_id, known.key, known.name, known.since, known.connections + 1
        )

    async def depart(self, practice_id: int, consultation_id: int, key: str) -> bool:
        """True when the person's last connection left."""
        room = self._waiting.get(practice_id, {})
        known = room.get((consultation_id, key))
        if known is None:
            return False
        if known.connections > 1:
            room[(consultation_id, key)] = WaitingPerson(
                known.consultation_id, known.key, known.name, known.since, known.connections - 1
            )
            return False
        del room[(consultation_id, key)]
        return True

    async def waiting(self, practice_id: int) -> list[WaitingPerson]:
        return sorted(self._waiting.get(practice_id, {}).values(), key=lambda person: person.since)

    async def admit(self, practice_id: int, consultation_id: int, key: str) -> None:
        """Off the waiting list, however many tabs they had open, and into the call."""
        self._waiting.get(practice_id, {}).pop((consultation_id, key), None)
        self._admitted.setdefault(consultation_id, set()).add(key)

    async def is_admitted(self, consultation_id: int, key: str) -> bool:
        return key in self._admitted.get(consultation_id, set())

    async def clear(self, practice_id: int, consultation_id: int) -> None:
        self._admitted.pop(consultation_id, None)
        self._calls.pop(consultation_id, None)
        self._forced_relay.discard(consultation_id)
        room = self._waiting.get(practice_id, {})
        for slot in [slot for slot in room if slot[0] == consultation_id]:
            del room[slot]

    async def join_call(self, consultation_id: int, peer: CallPeer) -> None:
        """A newer session of the same person takes the older one's place."""
        self._calls.setdefault(consultation_id, {})[peer.key] = peer

    async def update_call_peer(self, consultation_id: int, key: str, session: str, **changes: object) -> bool:
        """Only the session that holds the seat may change it."""
        peers = self._calls.get(consultation_id, {})
        known = peers.get(key)
        if known is None or known.session != session:
            return False
        peers[key] = replace(known, **cast("dict[str, Any]", changes))
        return True

    async def leave_call(self, consultation_id: int, key: str, session: str) -> bool:
        peers = self._calls.get(consultation_id, {})
        known = peers.get(key)
        if known is None or known.session != session:
            return False
        del peers[key]
        if not peers:
            self._calls.pop(consultation_id, None)
            self._forced_relay.discard(consultation_id)
        return True

    async def call_peers(self, consultation_id: int) -> list[CallPeer]:
        return list(self._calls.get(consultation_id, {}).values())

    async def force_relay(self, consultation_id: int) -> None:
        self._forced_relay.add(consultation_id)

    async def relay_forced(self, consultation_id: int) -> bool:
        return consultation_id in self._forced_relay

    async def publish(self, channel: str, message: dict) -> None:
        for queue in list(self._subscribers.get(channel, ())):
            if queue.qsize() < QUEUE_LIMIT:
                queue.put_nowait(message)

    @contextlib.asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[asyncio.Queue[dict]]:
        """One queue for all the channels, so their messages arrive in the order sent."""
        queue: asyncio.Queue[dict] = asyncio.Queue()
        for channel in channels:
            self._subscribers.setdefault(channel, set()).add(queue)
        try:
            yield queue
        finally:
            for channel in channels:
                subscribers = self._subscribers.get(channel, set())
                subscribers.discard(queue)
                if not subscribers:
                    self._subscribers.pop(channel, None)
