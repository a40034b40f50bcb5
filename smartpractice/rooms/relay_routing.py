"""A web instance's side of the relay workers (SMARTPRACTICE_RELAY_WORKERS): each relayed
call is placed on one live worker, by load, and stays there; whatever instance a
participant's socket reaches sends that call's relay requests to that worker and gets
the answer back, through Redis (rooms/relay_registry.py lists the keys).

Requests go into the worker's inbox (a list it pops); answers come back on this
instance's own pub/sub channel, through the RoomState's one subscription. Every instance
also watches the workers' leases: when one runs out (the worker was killed, or hangs),
the first instance to notice unplaces its calls and tells their participants
(`relay_moved`), whose browsers then publish afresh and land on another worker.

An offer can be on its way to a worker when its call moves. Its answer belongs to a
connection the browser drops on `relay_moved`, so it is not passed on, nor is the offer
sent on to the call's next worker (the browser's fresh offer goes there): the browser
gets the error `relay_moved` instead. That holds for the answer that comes back from a
worker which no longer holds the call, and for the request whose worker's lease runs out
while it waits (noticed by whichever instance watches next, not only the one that reaps).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Iterator, Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from smartpractice.rooms import relay_registry as registry
from smartpractice.rooms.call import call_channel
from smartpractice.rooms.relays import Attached, RelayFull, RelayMoved, RelayUnavailable, Sources
from smartpractice.rooms.state import RoomState, RoomsUnavailable
from smartpractice.rtc import SendingRefused

logger = logging.getLogger(__name__)

# An attach makes a peer connection and gathers its candidates on the worker: well under
# a second on an idle machine, several under load.
REQUEST_SECONDS = 10.0
# How often each instance looks for workers whose lease ran out.
WATCH_SECONDS = 1.0
_FAILURES = (RedisError, OSError)


class RelayFailed(Exception):
    """The worker could not use the offer (its kind only: the text may quote the offer)."""


class _Moved(Exception):
    """The worker no longer holds the call (draining, or its lease ran out)."""


class WorkerRelays:
    def __init__(self, redis: Redis, state: RoomState, *, prefix: str, request_seconds: float = REQUEST_SECONDS,
                 watch_seconds: float = WATCH_SECONDS) -> None:
        self.instance = secrets.token_hex(8)
        self._redis = redis
        self._state = state
        self._p = prefix
        self._request_seconds = request_seconds
        self._watch_seconds = watch_seconds
        self._scripts = {name: redis.register_script(getattr(registry, name)) for name in ("PLACE", "REAP")}
        self._pending: dict[str, tuple[str, asyncio.Future[dict]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._replies(), name="relay replies"),
                       asyncio.create_task(self._watch(), name="relay workers watch")]
        # Answers must not be published before this instance listens; Redis being away
        # is no reason to hold the start up (requests fail until it is back).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3.0):
                await self._listening.wait()

    async def close(self) -> None:
        """This instance stops; the workers and their calls go on."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(RelayUnavailable())

    def statistics(self) -> dict[str, int]:
        """The media is on the workers: this instance forwards none of it."""
        return {}

    # --- the RelayRooms interface ---------------------------------------------------

    async def attach(self, call: int, connection: str, sdp: str, *, publisher: str, receive_from: Sequence[str],
                     publishing: bool) -> Attached:
        worker = await self._place(call)
        try:
            reply = await self._request(worker, "attach", call, connection=connection, sdp=sdp,
                                        publisher=publisher, receive_from=list(receive_from), publishing=publishing)
        except _Moved:
            # The worker was draining or its lease ran out: whoever noticed told the call.
            raise RelayMoved() from None
        if reply.get("error") == "refused":
            raise SendingRefused(connection)
        if reply.get("error") == "full":
            raise RelayFull()
        if reply.get("error"):
            raise RelayFailed(reply["error"])
        if await self._placed_on(call) != worker:
            # The call moved while the worker answered (it began draining, or was given up
            # for dead): that connection goes nowhere, and relay_moved is on its way.
            raise RelayMoved()
        return Attached(reply["answer"], reply["sources"])

    async def detach(self, call: int, connections: Sequence[str], publisher: str) -> Sources | None:
        reply = await self._ask_placed(call, "detach", connections=list(connections), publisher=publisher)
        return None if reply is None else reply.get("sources")

    async def publishers(self, call: int) -> Sources | None:
        reply = await self._ask_placed(call, "publishers")
        return None if reply is None else reply.get("sources")

    async def release(self, call: int) -> None:
        await self._ask_placed(call, "release")

    # --- placement and requests -----------------------------------------------------

    async def _place(self, call: int) -> str:
        for _ in range(2):
            with self._guard():
                found = (await self._scripts["PLACE"](args=[self._p, call, registry.KEEP_SECONDS])).decode()
            if not found:
                raise RelayUnavailable()
            if not found.startswith("!"):
                return found
            await self.reap()  # its worker is gone and nobody noticed yet: move it now
        raise RelayUnavailable()

    async def _placed_on(self, call: int) -> str | None:
        with self._guard():
            worker = await self._redis.get(registry.key(self._p, "placement", call))
        return worker.decode() if isinstance(worker, bytes) else worker

    async def _ask_placed(self, call: int, op: str, **fields: object) -> dict | None:
        """A request to the call's worker, if the call is placed on a live one."""
        worker = await self._placed_on(call)
        if worker is None:
            return None
        try:
            return await self._request(worker, op, call, **fields)
        except (_Moved, TimeoutError, RelayUnavailable):
            return None

    async def _request(self, worker: str, op: str, call: int, **fields: object) -> dict:
        request_id = secrets.token_hex(8)
        future: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (worker, future)
        inbox = registry.key(self._p, "worker", worker, "inbox")
        message = json.dumps({"id": request_id, "reply": self.instance, "op": op, "call": call, **fields})
        try:
            with self._guard():
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.lpush(inbox, message)
                    pipe.expire(inbox, registry.INBOX_SECONDS)
                    await pipe.execute()
            async with asyncio.timeout(self._request_seconds):
                reply = await future
        finally:
            self._pending.pop(request_id, None)
        if reply.get("moved"):
            raise _Moved()
        return reply

    async def _replies(self) -> None:
        """The answers for this instance, until cancelled; subscribed again after a failure."""
        while True:
            try:
                async with self._state.subscribe(registry.replies_channel(self.instance)) as queue:
                    self._listening.set()
                    while True:
                        reply = await queue.get()
                        pending = self._pending.get(reply.get("id", ""))
                        if pending is not None and not pending[1].done():
                            pending[1].set_result(reply)
            except RoomsUnavailable:
                await asyncio.sleep(1.0)

    # --- failover -------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._watch_seconds)
            try:
                await self.reap()
                await self._fail_orphaned()
            except RoomsUnavailable:
                pass  # the room state says so in the log and on /readyz
            except Exception:
                logger.exception("watching the relay workers failed")

    async def reap(self) -> None:
        """Workers whose lease ran out: their calls are unplaced and their participants told
        to connect afresh; requests waiting for them fail at once instead of timing out."""
        with self._guard():
            gone, moved = await self._scripts["REAP"](args=[self._p])
        if not gone:
            return
        workers = {worker.decode() for worker in gone}
        logger.warning("relay workers %s stopped renewing their lease: %d calls move to another worker",
                       ", ".join(sorted(workers)), len(moved))
        for worker, future in list(self._pending.values()):
            if worker in workers and not future.done():
                future.set_result({"moved": True})
        for call in moved:
            await self._state.publish(call_channel(int(call)), {"type": "relay_moved"})

    async def _fail_orphaned(self) -> None:
        """Requests waiting for a worker whose lease ran out, when another instance reaped
        it (and told the calls): they fail now rather than when REQUEST_SECONDS are up."""
        waiting = sorted({worker for worker, future in self._pending.values() if not future.done()})
        if not waiting:
            return
        with self._guard():
            async with self._redis.pipeline(transaction=False) as pipe:
                for worker in waiting:
                    pipe.exists(registry.key(self._p, "worker", worker))
                found = await pipe.execute()
        gone = {worker for worker, exists in zip(waiting, found, strict=True) if not exists}
        for worker, future in list(self._pending.values()):
            if worker in gone and not future.done():
                future.set_result({"moved": True})

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except _FAILURES as error:
            raise RoomsUnavailable() from error
