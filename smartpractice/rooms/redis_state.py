"""The room state in Redis, shared by every instance that points at the same server
(SMARTPRACTICE_REDIS_URL): who waits, who was let in, who is in which call, and the
news between them over Redis pub/sub.

Each instance holds a lease (a key with a TTL its heartbeat renews) and marks what it
puts in with its id. When an instance stops without a word, its lease runs out; the next
heartbeat of any other instance reaps what it held (redis_scripts.REAP) and tells the
listeners, which announce the change to the practice and the call. Each instance keeps
one pub/sub connection, subscribed to a channel while at least one of its own sockets
listens to it, and fans each message out to those sockets' queues in the order Redis
delivered them.

When Redis cannot be reached, every call raises RoomsUnavailable; sockets that are open
stay open, and the instance catches up once Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from datetime import datetime
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError
from redis.typing import EncodableT

from smartpractice.rooms import redis_scripts
from smartpractice.rooms.state import (
    QUEUE_LIMIT,
    CallPeer,
    Expired,
    ExpiryListener,
    RoomsUnavailable,
    WaitingPerson,
)

logger = logging.getLogger(__name__)

# A lease outlives two missed heartbeats; what a dead instance held is gone within
# LEASE + HEARTBEAT seconds (20 s).
LEASE_SECONDS = 15.0
HEARTBEAT_SECONDS = 5.0
# Seats of a dead instance show "reconnecting" this long, as after a dropped connection.
RECONNECT_GRACE_SECONDS = 30.0
# Admissions and a call's move to the relay outlive any consultation.
KEEP_SECONDS = 24 * 3600
# How long one Redis command may take before the rooms count as unavailable.
COMMAND_SECONDS = 3.0
RETRY_SECONDS = 1.0
_FAILURES = (RedisError, OSError, TimeoutError)


def connect(url: str) -> Redis:
    """A client that gives up within seconds: a page must not hang on a dead Redis."""
    return Redis.from_url(
        url, socket_connect_timeout=COMMAND_SECONDS, socket_timeout=COMMAND_SECONDS,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1), health_check_interval=30,
    )


def where(url: str) -> str:
    """host:port of a Redis URL, for the log (never its password)."""
    parts = urlsplit(url)
    return parts.path if parts.scheme == "unix" else f"{parts.hostname}:{parts.port or 6379}"


class RedisRoomState:
    def __init__(self, redis: Redis, *, prefix: str = "smartpractice", name: str = "redis",
                 lease_seconds: float = LEASE_SECONDS, heartbeat_seconds: float = HEARTBEAT_SECONDS,
                 reconnect_grace: float = RECONNECT_GRACE_SECONDS) -> None:
        self.instance = secrets.token_hex(8)
        self._redis = redis
        self._p = prefix
        self._name = name
        self._lease_ms = int(lease_seconds * 1000)
        self._heartbeat = heartbeat_seconds
        self._grace_ms = int(reconnect_grace * 1000)
        self._scripts = {script: redis.register_script(getattr(redis_scripts, script)) for script in (
            "ARRIVE", "DEPART", "ADMIT", "CLEAR", "JOIN_CALL", "UPDATE_CALL_PEER", "LEAVE_CALL", "REAP", "SWEEP")}
        self._listeners: list[ExpiryListener] = []
        self._available: bool | None = None
        self._pubsub: PubSub = redis.pubsub()
        self._queues: dict[str, set[asyncio.Queue[dict]]] = {}
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._confirmations: dict[bytes, list[asyncio.Future[None]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # --- lifetime -------------------------------------------------------------------

    async def start(self) -> None:
        """Register and start the heartbeat and the pub/sub reader. Redis being away is
        logged, not raised: the instance serves everything else and retries."""
        await self._beat_once()
        self._tasks = [asyncio.create_task(self._heartbeats(), name="rooms heartbeat"),
                       asyncio.create_task(self._read(), name="rooms pub/sub")]

    async def close(self) -> None:
        """Stop and give up the lease: another instance reaps what is left at its next beat."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        stuck: set[asyncio.Task[None]] = set()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=1.0)
        with contextlib.suppress(*_FAILURES):
            await self._redis.delete(self._key("instance", self.instance))
        with contextlib.suppress(*_FAILURES):
            await self._pubsub.aclose()
        if stuck:
            # redis-py can swallow a cancellation while it connects; with its connections
            # closed, what the task waits for fails, and it sees that it is stopping.
            await self._redis.connection_pool.disconnect()
            await asyncio.wait(stuck, timeout=COMMAND_SECONDS)

    def on_expired(self, listener: ExpiryListener) -> None:
        self._listeners.append(listener)

    async def ready(self) -> bool:
        try:
            async with asyncio.timeout(COMMAND_SECONDS):
                await self._redis.ping()
        except _FAILURES as error:
            self._mark(False, error)
            return False
        self._mark(True)
        return True

    # --- waiting rooms --------------------------------------------------------------

    async def arrive(self, practice_id: int, person: WaitingPerson) -> None:
        """A second tab of the same person counts once, keeping the earlier arrival."""
        data = json.dumps({"name": person.name, "since": person.since.isoformat()})
        await self._run("ARRIVE", self.instance, practice_id, _slot(person.consultation_id, person.key), data)

    async def depart(self, practice_id: int, consultation_id: int, key: str) -> bool:
        """True when the person's last connection left."""
        return bool(await self._run("DEPART", self.instance, practice_id, _slot(consultation_id, key)))

    async def waiting(self, practice_id: int) -> list[WaitingPerson]:
        people_key = self._key("waiting", practice_id)
        with self._guard():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hgetall(people_key)
                pipe.hgetall(people_key + ":tabs")
                people, tabs = await pipe.execute()
        connections: dict[str, int] = {}
        for field, count in tabs.items():
            slot = field.decode().rpartition("|")[0]
            connections[slot] = connections.get(slot, 0) + int(count)
        found = []
        for slot, raw in people.items():
            cid, _, key = slot.decode().partition("|")
            data = json.loads(raw)
            found.append(WaitingPerson(int(cid), key, data["name"], datetime.fromisoformat(data["since"]),
                                       connections.get(slot.decode(), 1)))
        return sorted(found, key=lambda person: person.since)

    async def admit(self, practice_id: int, consultation_id: int, key: str) -> None:
        """Off the waiting list, however many tabs they had open, and into the call."""
        await self._run("ADMIT", practice_id, consultation_id, key, KEEP_SECONDS)

    async def is_admitted(self, consultation_id: int, key: str) -> bool:
        with self._guard():
            return bool(await self._redis.sismember(self._key("admitted", consultation_id), key))

    async def clear(self, practice_id: int, consultation_id: int) -> None:
        await self._run("CLEAR", practice_id, consultation_id)

    # --- calls ----------------------------------------------------------------------

    async def join_call(self, consultation_id: int, peer: CallPeer) -> None:
        """A newer session of the same person takes the older one's place."""
        await self._run("JOIN_CALL", self.instance, consultation_id, peer.key, json.dumps(asdict(peer)))

    async def update_call_peer(self, consultation_id: int, key: str, session: str, **changes: object) -> bool:
        """Only the session that holds the seat may change it."""
        unknown = set(changes) - set(CallPeer.__dataclass_fields__)
        if unknown:
            raise TypeError(f"CallPeer has no field {sorted(unknown)[0]!r}")
        return bool(await self._run("UPDATE_CALL_PEER", consultation_id, key, session, json.dumps(changes)))

    async def leave_call(self, consultation_id: int, key: str, session: str) -> bool:
        return bool(await self._run("LEAVE_CALL", consultation_id, key, session))

    async def call_peers(self, consultation_id: int) -> list[CallPeer]:
        with self._guard():
            seats = await self._redis.hgetall(self._key("call", consultation_id))
        found = sorted((json.loads(raw) for raw in seats.values()), key=lambda seat: seat["order"])
        fields = CallPeer.__dataclass_fields__
        return [CallPeer(**{name: value for name, value in seat.items() if name in fields}) for seat in found]

    async def force_relay(self, consultation_id: int) -> None:
        with self._guard():
            await self._redis.set(self._key("relay", consultation_id), 1, ex=KEEP_SECONDS)

    async def relay_forced(self, consultation_id: int) -> bool:
        with self._guard():
            return bool(await self._redis.exists(self._key("relay", consultation_id)))

    # --- news -----------------------------------------------------------------------

    async def publish(self, channel: str, message: dict) -> None:
        with self._guard():
            await self._redis.publish(self._key("ch", channel), json.dumps(message))

    @contextlib.asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[asyncio.Queue[dict]]:
        """One queue for all the channels, so their messages arrive in the order Redis
        delivered them. Returns once Redis confirmed every channel: nothing published
        after that is missed."""
        queue: asyncio.Queue[dict] = asyncio.Queue()
        fresh = []
        for channel in dict.fromkeys(channels):
            listeners = self._queues.setdefault(channel, set())
            if not listeners:
                fresh.append(channel)
                self._ready[channel] = self._expect(self._key("ch", channel))
            listeners.add(queue)
        try:
            with self._guard():
                if fresh:
                    await self._pubsub.subscribe(*(self._key("ch", channel) for channel in fresh))
                async with asyncio.timeout(COMMAND_SECONDS):
                    await asyncio.gather(*(asyncio.shield(self._ready[c]) for c in dict.fromkeys(channels)))
        except BaseException:
            await self._unsubscribe(queue, channels)
            raise
        try:
            yield queue
        finally:
            await self._unsubscribe(queue, channels)

    async def _unsubscribe(self, queue: asyncio.Queue[dict], channels: tuple[str, ...]) -> None:
        gone = []
        for channel in dict.fromkeys(channels):
            listeners = self._queues.get(channel, set())
            listeners.discard(queue)
            if not listeners:
                self._queues.pop(channel, None)
                ready = self._ready.pop(channel, None)
                if ready is not None and not ready.done():
                    ready.cancel()
                gone.append(self._key("ch", channel))
        if gone:
            # When Redis is away the connection is gone too, and with it the subscription.
            with contextlib.suppress(*_FAILURES):
                await self._pubsub.unsubscribe(*gone)

    def _expect(self, name: str) -> asyncio.Future[None]:
        """A future resolved once Redis confirms a subscription to `name`."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(name.encode(), []).append(future)
        return future

    async def _read(self) -> None:
        """The one pub/sub connection: confirmations and messages, until cancelled."""
        while not self._stopping:
            try:
                if not self._pubsub.subscribed:
                    # A channel of its own keeps the connection subscribed while no socket
                    # listens; after a failure, the sockets' channels are subscribed again.
                    await self._pubsub.subscribe(self._key("instance", self.instance, "ch"),
                                                 *(self._key("ch", channel) for channel in self._queues))
                message = await self._pubsub.get_message(timeout=None)
            except _FAILURES as error:
                if self._stopping:
                    return
                self._mark(False, error)
                for waiting in self._confirmations.values():
                    for future in waiting:
                        if not future.done():
                            future.set_exception(ConnectionError("Redis connection lost"))
                self._confirmations.clear()
                # A fresh connection: redis-py's own reconnection can keep reading a dead stream.
                broken, self._pubsub = self._pubsub, self._redis.pubsub()
                with contextlib.suppress(*_FAILURES):
                    await broken.aclose()
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict) -> None:
        if message["type"] == "subscribe":
            for future in self._confirmations.pop(message["channel"], ()):
                if not future.done():
                    future.set_result(None)
        elif message["type"] == "message":
            channel = message["channel"].decode()[len(self._p) + 4:]  # after "P:ch:"
            listeners = self._queues.get(channel)
            if listeners:
                news = json.loads(message["data"])
                for queue in list(listeners):
                    if queue.qsize() < QUEUE_LIMIT:
                        queue.put_nowait(news)

    # --- leases and expiry ----------------------------------------------------------

    async def _heartbeats(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._heartbeat)
            await self._beat_once()

    async def _beat_once(self) -> None:
        try:
            async with asyncio.timeout(COMMAND_SECONDS * 2):
                await self._renew()
                expired = await self._reap()
        except _FAILURES as error:
            self._mark(False, error)
            return
        self._mark(True)
        if expired.practices or expired.calls:
            await self._tell(expired)

    async def _renew(self) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(self._key("instances"), self.instance)
            pipe.set(self._key("instance", self.instance), "1", px=self._lease_ms, get=True)
            _, before = await pipe.execute()
        if before is None and self._available is not None:
            logger.error("room state lease of instance %s had run out: another instance may have reaped its "
                         "waiting people and call seats", self.instance)

    async def _reap(self) -> Expired:
        practices: set[int] = set()
        calls: set[int] = set()
        for raw in await self._redis.smembers(self._key("instances")):
            member = raw.decode() if isinstance(raw, bytes) else raw
            if member == self.instance:
                continue
            if await self._redis.exists(self._key("instance", member)):
                continue
            lost_practices, lost_calls = await self._scripts["REAP"](
                args=[self._p, member, self._grace_ms])
            practices.update(int(p) for p in lost_practices)
            calls.update(int(c) for c in lost_calls)
            if lost_practices or lost_calls:
                logger.warning("room state: instance %s is gone; what it held expired in %d waiting lists and "
                               "%d calls", member, len(lost_practices), len(lost_calls))
        calls.update(int(c) for c in await self._scripts["SWEEP"](args=[self._p]))
        return Expired(tuple(sorted(practices)), tuple(sorted(calls)))

    async def _tell(self, expired: Expired) -> None:
        for listener in self._listeners:
            try:
                await listener(expired)
            except Exception:
                logger.exception("announcing what expired failed")

    # --- plumbing -------------------------------------------------------------------

    def _key(self, *parts: object) -> str:
        return ":".join((self._p, *(str(part) for part in parts)))

    async def _run(self, script: str, *args: EncodableT) -> object:
        with self._guard():
            return await self._scripts[script](args=[self._p, *args])

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except _FAILURES as error:
            self._mark(False, error)
            raise RoomsUnavailable() from error

    def _mark(self, available: bool, error: BaseException | None = None) -> None:
        """Say so in the log when Redis goes away or comes back, once each time."""
        if available == self._available:
            return
        if available:
            logger.info("room state: Redis at %s answers (instance %s)", self._name, self.instance)
        else:
            logger.error("room state: Redis at %s unreachable (%s): waiting rooms and calls refuse new "
                         "connections until it answers; running calls go on", self._name, type(error).__name__)
        self._available = available


def _slot(consultation_id: int, key: str) -> str:
    return f"{consultation_id}|{key}"
