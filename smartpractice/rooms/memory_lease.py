"""One server at a time for waiting rooms and calls kept in memory.

Without SMARTPRACTICE_REDIS_URL an instance keeps the waiting rooms and calls in its own
memory. A second instance on the same database would split them: a patient waiting on
one never appears in the list on the other, and an admission there never reaches them.
So such an instance takes a lease in the database when it starts, renews it while it
runs, and gives it up when it stops; another instance that finds the lease held refuses
to start, and says why. After a crash nobody gives the lease up: it runs out after
LEASE_SECONDS. A starting instance waits that long for a lease that is not renewed, so
that a restart after a crash succeeds at the first try (systemd gives up on a unit that
fails five times in ten seconds), while a living holder, which renews every
RENEW_SECONDS, is recognised within about that time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from datetime import timedelta

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.clock import Clock
from smartpractice.storage import instance_leases
from smartpractice.storage.instance_leases import Lease

logger = logging.getLogger(__name__)

NAME = "rooms_in_memory"
LEASE_SECONDS = 15.0
RENEW_SECONDS = 5.0


class RoomsHeldElsewhere(RuntimeError):
    """Another living instance keeps this database's rooms in its memory."""

    def __init__(self, lease: Lease) -> None:
        super().__init__(
            f"Another smartpractice instance ({lease.description}) already serves the waiting rooms and "
            f"calls of this database from its memory, so this one does not start: two would split "
            f"them. Stop the other one, or give every instance the same SMARTPRACTICE_REDIS_URL so that "
            f"they share waiting rooms and calls (docs/deployment.md, \"Several instances\").")
        self.lease = lease


class MemoryRoomsLease:
    def __init__(self, *, engine: AsyncEngine, clock: Clock, lease_seconds: float = LEASE_SECONDS,
                 renew_seconds: float = RENEW_SECONDS) -> None:
        self._engine = engine
        self._clock = clock
        self._lease = timedelta(seconds=lease_seconds)
        self._renew_seconds = renew_seconds
        self.holder = secrets.token_hex(8)
        self.description = f"host {socket.gethostname()}, process {os.getpid()}"
        self._renewing: asyncio.Task[None] | None = None

    async def take(self) -> None:
        """Hold the lease and keep renewing it, or raise RoomsHeldElsewhere. A lease its
        holder stopped renewing is waited out (at most LEASE_SECONDS)."""
        seen: Lease | None = None
        while not await self._take():
            async with self._engine.connect() as conn:
                lease = await instance_leases.current(conn, NAME)
            if lease is None:
                continue  # given up just now
            if seen is not None and (lease.holder, lease.renewals) != (seen.holder, seen.renewals):
                raise RoomsHeldElsewhere(lease)
            if seen is None:
                logger.info("the waiting rooms and calls of this database are held by another instance (%s); "
                            "waiting up to %.0f s to see whether it is still running", lease.description,
                            self._lease.total_seconds())
            seen = lease
            await asyncio.sleep(min(1.0, self._renew_seconds / 2))
        self._renewing = asyncio.create_task(self._renew(), name="rooms lease")

    async def _take(self) -> bool:
        now = self._clock.now()
        async with self._engine.begin() as conn:
            return await instance_leases.take(conn, NAME, self.holder, self.description,
                                              now=now, until=now + self._lease)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._renew_seconds)
            try:
                if not await self._take():
                    # Only after this instance could not renew for LEASE_SECONDS (a database
                    # outage): another one started meanwhile.
                    logger.error("another instance took over the waiting rooms and calls of this database "
                                 "while this one could not renew its lease; stop one of them, or give both "
                                 "SMARTPRACTICE_REDIS_URL")
            except (OSError, DBAPIError) as error:
                logger.warning("could not renew the lease on the waiting rooms and calls: %s", type(error).__name__)

    async def release(self) -> None:
        """Stop renewing and give the lease up, so a successor need not wait it out."""
        if self._renewing is not None:
            self._renewing.cancel()
            await asyncio.gather(self._renewing, return_exceptions=True)
            self._renewing = None
        try:
            async with self._engine.begin() as conn:
                await instance_leases.release(conn, NAME, self.holder)
        except (OSError, DBAPIError) as error:
            logger.warning("could not give up the lease on the waiting rooms and calls (%s); "
                           "it runs out by itself", type(error).__name__)
