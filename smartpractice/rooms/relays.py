"""Where a relayed call's media goes: the relay in this process (`LocalRelays`, one
instance) or a relay worker chosen by load and reached through Redis
(rooms/relay_routing.py, `smartpractice relay-worker`). `Calls` speaks only this
interface, so it never knows which.

A publisher's `generation` grows with each new publish connection: the browsers
compare the list of publishers (ids, kinds, generations) with the one their receive
connection was made for, and make a new one when it differs (docs/signalling.md).

Each list carries the `version` of the moment it was read from the room. Lists are
announced by whichever request read them, concurrently (several publish attaches at once
when a call turns to the relay, on several instances with relay workers): one read earlier
can reach the browsers after one read later, and a browser that took it would receive
without the publisher that attached in between, for good. Browsers use a list only if
its version is above that of the last one they used.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from smartpractice.rtc import Relay, RelayRoom

# A publisher as `relay_sources` lists it: {"id", "kinds", "generation"}.
Publisher = dict
# What `relay_sources` carries: {"publishers": [Publisher], "version": int}.
Sources = dict


@dataclass(frozen=True)
class Attached:
    answer: str
    sources: Sources


class RelayUnavailable(Exception):
    """No relay worker is there to take the call (none registered, or all draining)."""


class RelayMoved(Exception):
    """The call moved to another relay worker while the offer was being answered: the
    browser, told `relay_moved`, offers afresh on a new connection."""


class RelayFull(Exception):
    """The call's relay worker has no free UDP port in its range."""


class RelayRooms(Protocol):
    async def attach(self, call: int, connection: str, sdp: str, *, publisher: str, receive_from: Sequence[str],
                     publishing: bool) -> Attached:
        """Answer one of a participant's relay connections. Raises rtc.SendingRefused for a
        receive offer that sends, RelayUnavailable, or whatever the relay made of the offer."""
        ...

    async def detach(self, call: int, connections: Sequence[str], publisher: str) -> Sources | None:
        """Let go of these connections; the publishers left, or None when the call has no
        relay room (any more)."""
        ...

    async def publishers(self, call: int) -> Sources | None: ...

    async def release(self, call: int) -> None:
        """The call no longer goes through the relay (it turned peer to peer, or ended)."""
        ...

    def statistics(self) -> dict[str, int]: ...

    async def close(self) -> None: ...


def relay_room_name(call: int) -> str:
    return f"consultation:{call}"


_last_version = 0


def _version() -> int:
    """Microseconds of the wall clock, and always above the last one of this process: a
    call's room lives in one process at a time, and moves to another worker only after
    seconds (a lease running out, a drain), far more than clocks differ."""
    global _last_version
    _last_version = max(_last_version + 1, time.time_ns() // 1000)
    return _last_version


def sources_of(room: RelayRoom, generations: dict[str, int]) -> Sources:
    """The room's publishers now, with the version of this reading. Called with no await
    between the reading and its version, so that a later version is a later list."""
    return {"publishers": [{"id": key, "kinds": kinds, "generation": generations.get(key, 0)}
                           for key, kinds in room.publishers().items()],
            "version": _version()}


class LocalRelays:
    """The relay on this process's event loop: the default, for a single instance."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay
        self._generations: dict[int, dict[str, int]] = {}
        # Never reused, not even by a publisher who left and came back: a browser that
        # missed the announcement of the leave still sees the list change.
        self._publishes = itertools.count(1)

    def _room(self, call: int) -> RelayRoom | None:
        name = relay_room_name(call)
        return self._relay.room(name) if name in self._relay.room_names else None

    async def attach(self, call: int, connection: str, sdp: str, *, publisher: str, receive_from: Sequence[str],
                     publishing: bool) -> Attached:
        room = self._relay.room(relay_room_name(call))
        answer = await room.attach(connection, sdp, receive_from=list(receive_from), publishing=publishing)
        generations = self._generations.setdefault(call, {})
        if publishing:
            generations[publisher] = next(self._publishes)
        return Attached(answer, sources_of(room, generations))

    async def detach(self, call: int, connections: Sequence[str], publisher: str) -> Sources | None:
        generations = self._generations.get(call, {})
        generations.pop(publisher, None)
        room = self._room(call)
        if room is None:
            self._generations.pop(call, None)
            return None
        for connection in connections:
            await room.detach(connection)
        if not room.participant_ids:
            self._generations.pop(call, None)
            return None
        return sources_of(room, generations)

    async def publishers(self, call: int) -> Sources | None:
        room = self._room(call)
        return None if room is None else sources_of(room, self._generations.get(call, {}))

    async def release(self, call: int) -> None:
        self._generations.pop(call, None)
        room = self._room(call)
        if room is not None:
            for connection in room.participant_ids:
                await room.detach(connection)

    def statistics(self) -> dict[str, int]:
        return self._relay.statistics()

    async def close(self) -> None:
        await self._relay.close()
