"""A relay worker's lease in Redis (rooms/relay_registry.py), renewed from a thread of its own.

Why a thread: a worker near its ceiling forwards packets for most of every turn of its
event loop, and one turn drains every socket that is ready, so under load a turn takes
long. Renewed from the loop, the lease needed a turn for the heartbeat's sleep and one for
each Redis round trip after it: at 400 streams a worker renewed too late for its 3 s lease
and had its 372 calls moved away while it was still forwarding them. The thread renews on
time however long the turns are (the loop gives up the GIL every switch interval), with a
blocking client of its own, since the loop's client belongs to the loop.

What the lease must still tell is that the worker serves. So the thread renews only while
the loop answers its ping (a callback put on the loop at each renewal) within
LOOP_SILENCE_SECONDS: a loop that stopped answering (hung, not busy) lets the lease run out,
as a killed or SIGSTOPped process does (its thread stops with it). Busy is reported instead:
how late the loop answered and how much of a core the process used go into the lease with
every renewal, and a worker past FULL_CPU or FULL_LAG_SECONDS is `full`, so that placement
prefers the others, as LiveKit and Jitsi steer new rooms away from a node under stress. The
lag is the loop's own lateness on a short timer, not the ping's: the thread gets the GIL
most easily while the loop waits in select, so its pings tend to find the loop idle.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import redis
from redis.exceptions import RedisError

from smartpractice.rooms import relay_registry as registry

logger = logging.getLogger(__name__)

# A renewal that waits longer than this for Redis is given up and tried at the next beat.
COMMAND_SECONDS = 1.0
# How often the loop times its own lateness.
SAMPLE_SECONDS = 0.1
Fields = Mapping[str, str | int]


def connect(url: str) -> redis.Redis:
    """The lease thread's own blocking client."""
    return redis.Redis.from_url(url, socket_connect_timeout=COMMAND_SECONDS, socket_timeout=COMMAND_SECONDS)


@dataclass(frozen=True)
class Stress:
    """A renewal's figures: `cpu` the process's share of one core since the last renewal,
    `lag_seconds` how late its event loop ran at most, `full` past either ceiling."""

    cpu: float
    lag_seconds: float
    full: bool


class WorkerLease:
    def __init__(self, client: redis.Redis, *, prefix: str, lease_seconds: float = registry.LEASE_SECONDS,
                 heartbeat_seconds: float = registry.HEARTBEAT_SECONDS,
                 loop_silence_seconds: float = registry.LOOP_SILENCE_SECONDS) -> None:
        self._renew = client.register_script(registry.RENEW)
        self._p = prefix
        self._lease_ms = int(lease_seconds * 1000)
        self._heartbeat = heartbeat_seconds
        self._silence = loop_silence_seconds
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fields_of: Callable[[], Fields] = dict
        self._on_lost: Callable[[], None] = lambda: None
        self._id = ""
        self._fields: Fields = {}
        self._answered = self._asked = time.monotonic()
        self._waiting = False
        self._lag = self._late = 0.0
        self._lost = False
        self.registered = False
        # What the last renewal reported of the worker's stress, for its /metrics: replaced
        # whole by the thread, read on the loop.
        self.stress = Stress(cpu=0.0, lag_seconds=0.0, full=False)

    def register(self, worker_id: str, fields: Fields) -> None:
        """The first renewal, blocking (run it off the loop); raises when Redis is away."""
        self._id, self._fields = worker_id, fields
        self._write(worker_id, {**fields, "cpu": "0.00", "lag_ms": 0, "full": 0}, registered=False)
        self.registered = True

    def start(self, loop: asyncio.AbstractEventLoop, fields: Callable[[], Fields], lost: Callable[[], None]) -> None:
        """Renew every heartbeat from now on. `fields` is called on the loop (the worker's
        figures); `lost` too, when the lease was found gone: the worker must let go of its
        calls and come back under another id (`renamed`)."""
        self._loop, self._fields_of, self._on_lost = loop, fields, lost
        self._answered = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="relay worker lease", daemon=True)
        self._thread.start()

    async def time_the_loop(self) -> None:
        """Run on the loop, until cancelled: how late its timers fire is how long its turns are."""
        while True:
            asked = time.monotonic()
            await asyncio.sleep(SAMPLE_SECONDS)
            self._late = max(self._late, time.monotonic() - asked - SAMPLE_SECONDS)

    def renamed(self, worker_id: str) -> None:
        """Called on the loop once the worker let go of what it held under its old id."""
        self._id, self.registered, self._lost = worker_id, False, False

    def stop(self) -> None:
        """No more renewals: a goodbye follows, or the lease runs out as after a kill."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(COMMAND_SECONDS * 3)

    # --- the thread -----------------------------------------------------------------

    def _run(self) -> None:
        cpu, then = _cpu_seconds(), time.monotonic()
        silent_said = False
        while not self._stopping.wait(self._heartbeat):
            now, used = time.monotonic(), _cpu_seconds()
            share, cpu, then = (used - cpu) / max(now - then, 1e-3), used, now
            if not self._ping(now):
                return  # the loop is closed
            if now - self._answered > self._silence:
                if not silent_said:
                    logger.error("relay worker %s: its event loop has not answered for %.0f s; it stops renewing "
                                 "its lease, so its calls move to other workers", self._id, now - self._answered)
                    silent_said = True
                continue
            if silent_said:
                logger.warning("relay worker %s: its event loop answers again", self._id)
                silent_said = False
            if self._lost:
                continue  # until the loop has let go and renamed the worker
            lag = max(now - self._asked, self._lag) if self._waiting else self._lag
            stress = self.stress = Stress(
                cpu=share, lag_seconds=lag, full=share >= registry.FULL_CPU or lag >= registry.FULL_LAG_SECONDS)
            worker_id, registered = self._id, self.registered
            try:
                renewed = self._write(worker_id, {**self._fields, "cpu": f"{share:.2f}", "lag_ms": int(lag * 1000),
                                                  "full": int(stress.full)}, registered=registered)
            except (RedisError, OSError) as error:
                logger.error("relay worker %s cannot renew its lease (%s)", worker_id, type(error).__name__)
                continue
            if not renewed:
                self._lost = True
                self._call(self._on_lost)
            elif worker_id == self._id:
                self.registered = True

    def _ping(self, now: float) -> bool:
        if self._waiting:
            return True
        self._waiting, self._asked = True, now
        return self._call(self._answer, now)

    def _answer(self, asked: float) -> None:
        """On the loop: it is alive; its figures as they are now, and its lateness since."""
        self._fields = self._fields_of()
        self._answered = time.monotonic()
        self._lag, self._late = max(self._late, self._answered - asked), 0.0
        self._waiting = False

    def _call(self, callback: Callable[..., None], *args: object) -> bool:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            return False
        return True

    def _write(self, worker_id: str, fields: Fields, *, registered: bool) -> bool:
        pairs = [item for pair in fields.items() for item in pair]
        return bool(self._renew(args=[self._p, worker_id, self._lease_ms, int(registered), *pairs]))


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system
