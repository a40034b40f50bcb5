"""Periodic jobs inside the server, each run by one instance at a time.

A job runs when it is due by the injected clock and its runner holds the job's lease in
the database. The holder renews the lease at every run, so the job stays with one
instance; another takes it over only once the lease has expired (a crash) or was given up
(a clean stop)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.clock import Clock
from smartpractice.storage import job_leases

log = logging.getLogger(__name__)

# The schedule follows the injected clock, so the runner looks at it this often (a frozen
# clock in tests moves the schedule); a look costs no database work.
TICK_SECONDS = 1.0

JobFunction = Callable[[asyncio.Event], Awaitable[object]]


@dataclass(frozen=True)
class Job:
    name: str
    interval: timedelta
    # Called with the runner's stop event: a long job returns early once it is set.
    run: JobFunction
    # Longer than a run and than the interval, so the holder renews it before it expires.
    lease: timedelta


class JobRunner:
    def __init__(self, *, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self.holder = secrets.token_hex(8)
        self._jobs: list[Job] = []
        self._due: dict[str, datetime] = {}
        self._stopping = asyncio.Event()
        # Completed runs per job name, for tests and metrics.
        self.runs: Counter[str] = Counter()

    def add(self, name: str, every: timedelta, run: JobFunction, *, lease: timedelta | None = None) -> None:
        """Run `run(stopping)` every `every`, first as soon as the runner starts."""
        if any(job.name == name for job in self._jobs):
            raise ValueError(f"job {name!r} is already registered")
        self._jobs.append(Job(name, every, run, lease or 2 * every))

    @property
    def jobs(self) -> tuple[Job, ...]:
        return tuple(self._jobs)

    async def run(self) -> None:
        """Run due jobs until `stop`; a background task of the server."""
        try:
            while not self._stopping.is_set():
                await self.run_due()
                try:
                    await asyncio.wait_for(self._stopping.wait(), TICK_SECONDS)
                except TimeoutError:
                    pass
        finally:
            await self._release()

    def stop(self) -> None:
        """Return from `run` after the job in hand: cancelling a job could cut a
        transaction in half or leave an SQLite write lock behind."""
        self._stopping.set()

    async def run_due(self) -> list[str]:
        """Run every job that is due and whose lease this runner gets; returns their names."""
        ran = []
        for job in self._jobs:
            if self._stopping.is_set():
                break
            now = self._clock.now()
            if now < self._due.get(job.name, now):
                continue
            self._due[job.name] = now + job.interval
            if await self._run(job, now):
                ran.append(job.name)
        return ran

    async def _run(self, job: Job, now: datetime) -> bool:
        try:
            async with self._engine.begin() as conn:
                if not await job_leases.take(conn, job.name, self.holder, now=now, until=now + job.lease):
                    return False
            await job.run(self._stopping)
        except Exception:
            # One failing round must not end the runner; the job is tried again when due.
            log.exception("job %s failed", job.name)
            return False
        self.runs[job.name] += 1
        return True

    async def _release(self) -> None:
        if not self._jobs:
            return
        try:
            async with self._engine.begin() as conn:
                await job_leases.release(conn, self.holder)
        except Exception:
            log.exception("could not give up the job leases; they expire by themselves")
