"""`smartpractice relay-worker`: the media relay (smartpractice/rtc) as a process of its
own, one per core, serving the calls that web instances place on it through Redis
(rooms/relay_registry.py has the keys, rooms/relay_routing.py the web side).

It registers with its address, port range and load under a lease of LEASE_SECONDS that a
thread renews every HEARTBEAT_SECONDS while the event loop answers (rooms/relay_lease.py
says why a thread). Killed, stopped or hung, it stops renewing: within seconds a web
instance notices, and the calls' browsers move to another worker. Busy, it renews and
reports itself full, and new calls go to other workers. Asked to
stop (SIGTERM), it drains: it takes no new calls, gives up the ones it holds (their
browsers move at once, as after a kill, but without waiting for the lease), lets the
connections close as the browsers leave, and exits within its stop time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time

from redis import Redis as BlockingRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError

from smartpractice.rooms import relay_registry as registry
from smartpractice.rooms.call import call_channel
from smartpractice.rooms.relay_lease import Stress, WorkerLease
from smartpractice.rooms.relays import relay_room_name, sources_of
from smartpractice.rtc import NoFreePort, Relay, RelayRoom, SendingRefused

logger = logging.getLogger(__name__)

_FAILURES = (RedisError, OSError, TimeoutError)
# Rooms let go of after a lost lease are given this long to close.
CLOSE_SECONDS = 10.0
# A call placed here whose first attach has not come yet keeps its place this long.
UNUSED_PLACEMENT_SECONDS = 30.0


class _Moved(Exception):
    """The call lives on another worker now, or this one is draining."""


def _new_id() -> str:
    # A restarted container may have the same host name and pid as its dead predecessor.
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class RelayWorker:
    def __init__(self, redis: Redis, relay: Relay, *, lease_redis: BlockingRedis, prefix: str, address: str,
                 ports: str = "", lease_seconds: float = registry.LEASE_SECONDS,
                 heartbeat_seconds: float = registry.HEARTBEAT_SECONDS,
                 loop_silence_seconds: float = registry.LOOP_SILENCE_SECONDS) -> None:
        self.id = _new_id()
        self.relay = relay
        self._redis = redis
        self._p = prefix
        self._address = address
        self._ports = ports
        self._heartbeat = heartbeat_seconds
        self._lease = WorkerLease(lease_redis, prefix=prefix, lease_seconds=lease_seconds,
                                  heartbeat_seconds=heartbeat_seconds, loop_silence_seconds=loop_silence_seconds)
        self._scripts = {name: redis.register_script(getattr(registry, name))
                         for name in ("CLAIM", "UNPLACE", "HAND_OVER", "LEAVE")}
        self._draining = False
        self._unused: dict[int, float] = {}  # call -> when it was first seen without a room
        self._handling: set[asyncio.Task[None]] = set()

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def stress(self) -> Stress:
        """How busy the worker's last lease renewal reported it (cpu, loop lag, full)."""
        return self._lease.stress

    def _key(self, *parts: object) -> str:
        return registry.key(self._p, *parts)

    # --- lifetime -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, stop_seconds: float) -> None:
        """Serve until `stop` is set, then drain for at most `stop_seconds`. Cancelled, it
        stops as if killed: no drain, no goodbye, its lease runs out."""
        await asyncio.to_thread(self._lease.register, self.id, self._fields())
        self._lease.start(asyncio.get_running_loop(), self._fields, self._lease_lost)
        logger.info("relay worker %s serves (address %s, ports %s)", self.id, self._address, self._ports or "any")
        tasks = [asyncio.create_task(self._housekeeping(), name="relay worker housekeeping"),
                 asyncio.create_task(self._lease.time_the_loop(), name="relay worker lateness"),
                 asyncio.create_task(self._serve(), name="relay worker inbox")]
        try:
            await stop.wait()
            await self.drain(stop_seconds)
        finally:
            # Its thread may take a renewal's round trip to end: not on the loop.
            await asyncio.to_thread(self._lease.stop)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._leave()
        logger.info("relay worker %s stopped", self.id)

    async def drain(self, stop_seconds: float) -> None:
        """Take no new calls, move the running ones, wait for their connections to close."""
        deadline = time.monotonic() + max(1.0, stop_seconds - 1.0)
        self._draining = True
        try:
            calls = await self._scripts["HAND_OVER"](args=[self._p, self.id])
            for call in calls:
                await self._redis.publish(registry.channel_key(self._p, call_channel(int(call))),
                                          json.dumps({"type": "relay_moved"}))
        except _FAILURES as error:
            logger.error("relay worker %s could not hand its calls over (%s)", self.id, type(error).__name__)
            calls = []
        logger.info("relay worker %s drains: %d calls move elsewhere", self.id, len(calls))
        # Rooms empty as the browsers close their old connections; the relay tells no one.
        while self.relay.room_names and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        if self.relay.room_names:
            logger.info("relay worker %s stops with %d rooms still open", self.id, len(self.relay.room_names))
        await self.relay.close()

    async def _leave(self) -> None:
        with contextlib.suppress(*_FAILURES):
            await self._scripts["LEAVE"](args=[self._p, self.id])

    def _fields(self) -> dict[str, str | int]:
        """What the lease carries besides the thread's own figures (on the loop: the rooms
        change under it)."""
        statistics = self.relay.statistics()
        return {"address": self._address, "ports": self._ports, "host": socket.gethostname(), "pid": os.getpid(),
                "load": sum(len(s.forwards) for s in self._sources()), "rooms": statistics["rooms"],
                "streams": statistics["audio_streams"] + statistics["video_streams"],
                "draining": int(self._draining)}

    def _lease_lost(self) -> None:
        task = asyncio.create_task(self._let_go())
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    async def _let_go(self) -> None:
        """The lease ran out meanwhile (a pause, a hung loop, Redis away): the calls were
        moved elsewhere. This worker closes its rooms and comes back as a new worker, since
        the old id's calls and inbox belong to whoever reaps it."""
        logger.error("relay worker %s lost its lease: its calls were moved, it lets go of %d rooms",
                     self.id, len(self.relay.room_names))
        # Renamed first, so that its lease comes back however long the rooms take to close
        # (closing takes them out of the relay at once, so new calls get rooms of their own).
        closing = asyncio.create_task(self.relay.close())
        self._handling.add(closing)
        closing.add_done_callback(self._handling.discard)
        self._unused.clear()
        old, self.id = self.id, _new_id()
        self._lease.renamed(self.id)
        logger.info("relay worker %s serves again as %s", old, self.id)
        if not (await asyncio.wait({closing}, timeout=CLOSE_SECONDS))[0]:
            logger.error("relay worker %s: the rooms it let go of have not closed after %.0f s", self.id, CLOSE_SECONDS)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                await self._forget_unused()
            except _FAILURES as error:
                logger.error("relay worker %s cannot read its placements (%s)", self.id, type(error).__name__)

    async def _forget_unused(self) -> None:
        """Calls placed here without a room for UNUSED_PLACEMENT_SECONDS (everyone left, or
        the first attach never came) are unplaced, so that placement counts what this
        worker really holds."""
        now = time.monotonic()
        rooms = set(self.relay.room_names)
        placed = {int(call) for call in await self._redis.smembers(self._key("worker", self.id, "calls"))}
        for call in list(self._unused):
            if call not in placed or relay_room_name(call) in rooms:
                del self._unused[call]
        for call in placed:
            if relay_room_name(call) not in rooms and now - self._unused.setdefault(call, now) > UNUSED_PLACEMENT_SECONDS:
                del self._unused[call]
                await self._scripts["UNPLACE"](args=[self._p, call, self.id])

    def _sources(self) -> list:
        return [source for name in self.relay.room_names for source in self.relay.room(name).sources()]

    # --- requests -------------------------------------------------------------------

    async def _serve(self) -> None:
        while True:
            try:
                # The id changes when a lost lease is taken back.
                found = await self._redis.brpop([self._key("worker", self.id, "inbox")], timeout=1)
            except _FAILURES as error:
                logger.error("relay worker %s cannot read its inbox (%s)", self.id, type(error).__name__)
                await asyncio.sleep(1.0)
                continue
            if found is not None:
                task = asyncio.create_task(self._handle(json.loads(found[1])))
                self._handling.add(task)
                task.add_done_callback(self._handling.discard)

    async def _handle(self, request: dict) -> None:
        call = int(request["call"])
        try:
            reply = await getattr(self, "_" + request["op"])(call, request)
        except _Moved:
            reply = {"moved": True}
        except SendingRefused:
            reply = {"error": "refused"}
        except NoFreePort as full:
            logger.error("relay worker %s has no free UDP port in %s-%s for consultation %s; widen its range or "
                         "add a worker", self.id, full.ports.start, full.ports.stop - 1, call)
            reply = {"error": "full"}
        except Exception as error:
            # Only the kind: the text may quote the browser's offer.
            logger.warning("relay worker %s: %s in consultation %s failed: %s", self.id, request["op"], call,
                           type(error).__name__)
            reply = {"error": "failed"}
        channel = registry.channel_key(self._p, registry.replies_channel(request["reply"]))
        with contextlib.suppress(*_FAILURES):
            await self._redis.publish(channel, json.dumps({"id": request["id"], **reply}))

    def _room(self, call: int) -> RelayRoom | None:
        name = relay_room_name(call)
        return self.relay.room(name) if name in self.relay.room_names else None

    async def _generations(self, call: int) -> dict[str, int]:
        found = await self._redis.hgetall(self._key("generations", call))
        return {_text(key): int(value) for key, value in found.items() if _text(key) != registry.PUBLISHES}

    async def _attach(self, call: int, request: dict) -> dict:
        if self._draining or not await self._scripts["CLAIM"](
                args=[self._p, call, self.id, registry.KEEP_SECONDS]):
            raise _Moved()
        room = self.relay.room(relay_room_name(call))
        answer = await room.attach(request["connection"], request["sdp"], receive_from=request["receive_from"],
                                   publishing=request["publishing"])
        if request["publishing"]:
            # The call's count of publishes, never reused by a publisher who left and came
            # back: a browser that missed the announcement of the leave still sees a change.
            generations = self._key("generations", call)
            generation = await self._redis.hincrby(generations, registry.PUBLISHES, 1)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(generations, request["publisher"], generation)
                pipe.expire(generations, registry.KEEP_SECONDS)
                await pipe.execute()
        return {"answer": answer, "sources": sources_of(room, await self._generations(call))}

    async def _detach(self, call: int, request: dict) -> dict:
        await self._redis.hdel(self._key("generations", call), request["publisher"])
        room = self._room(call)
        if room is None:
            return {"sources": None}
        for connection in request["connections"]:
            await room.detach(connection)
        if not room.participant_ids:
            await self._unplace(call)
            return {"sources": None}
        return {"sources": sources_of(room, await self._generations(call))}

    async def _publishers(self, call: int, request: dict) -> dict:
        room = self._room(call)
        return {"sources": None if room is None else sources_of(room, await self._generations(call))}

    async def _release(self, call: int, request: dict) -> dict:
        room = self._room(call)
        if room is not None:
            for connection in room.participant_ids:
                await room.detach(connection)
        await self._redis.delete(self._key("generations", call))
        await self._unplace(call)
        return {}

    async def _unplace(self, call: int) -> None:
        await self._scripts["UNPLACE"](args=[self._p, call, self.id])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
