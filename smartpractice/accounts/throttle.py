"""Rate limits (ASVS 6.3.1): per account and per client address, surviving restarts.

Every attempt is counted before the password is checked, in one statement per key, so
that many requests in parallel cannot all pass the check before any failure is recorded.

Passwords get growing waits (`Backoff`) instead of a lock: a lock that anyone who knows a
user name can trigger would let a stranger keep a patient out just before her appointment.
The waits per (address, account) grow long, so a guesser slows themself to a crawl; the
wait per account stays short, so the owner on a new device from elsewhere is held briefly.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage import throttles as store


@dataclass(frozen=True)
class ThrottlePolicy:
    max_attempts: int
    window: timedelta
    lockout: timedelta


@dataclass(frozen=True)
class Backoff:
    """After `free` failures, each further try must wait `base`, twice that, four times
    that, … up to `cap`; failures older than `window` are forgotten."""

    free: int
    base: timedelta
    cap: timedelta
    window: timedelta

    def wait_after(self, attempts: int) -> timedelta:
        extra = attempts - self.free
        if extra <= 0:
            return timedelta(0)
        return min(self.cap, self.base * 2 ** min(extra - 1, 30))


def minutes_left(locked_until: datetime, now: datetime) -> int:
    """Whole minutes to tell someone who must wait, never zero."""
    return max(1, int((locked_until - now).total_seconds() // 60) + 1)


# One-time codes of the second factor: only someone who has the password gets to try
# them, so a hard lock there is no lever for strangers.
SECOND_FACTOR_POLICY = ThrottlePolicy(max_attempts=5, window=timedelta(minutes=15), lockout=timedelta(minutes=15))
ADDRESS_POLICY = ThrottlePolicy(max_attempts=30, window=timedelta(minutes=15), lockout=timedelta(minutes=15))
# One address guessing at one account (and one known browser's own failures): 3 free, then
# 1 s, 2 s, 4 s … up to 15 minutes, so at most about 110 guesses a day from one address.
PAIR_BACKOFF = Backoff(free=3, base=timedelta(seconds=1), cap=timedelta(minutes=15), window=timedelta(days=1))
# One account from browsers it does not know, all addresses together: 10 free, then 1 s,
# 2 s … up to 60 s, the longest the owner on a new device is held by strangers' guesses;
# at most about 1,450 guesses a day on one account.
ACCOUNT_BACKOFF = Backoff(free=10, base=timedelta(seconds=1), cap=timedelta(seconds=60), window=timedelta(days=1))


class LoginThrottle:
    def __init__(self, *, secret: str) -> None:
        self._secret = secret.encode()

    def account_key(self, user_id: int | None, identifier: str) -> str:
        # Unknown names are counted too, under a keyed hash: a locked-out answer must not
        # reveal whether the account exists, and the name itself is never stored.
        if user_id is not None:
            return f"account:{user_id}"
        return "name:" + self._pseudonym(identifier.casefold())

    def address_key(self, address: str) -> str:
        return "address:" + self._pseudonym(address)

    def pair_key(self, address: str, account_key: str) -> str:
        """One client address guessing at one account (or name); the account's part first,
        so that an unlock or a password reset finds all of them."""
        return f"pair:{account_key}:" + self._pseudonym(address)[:32]

    def _pseudonym(self, value: str) -> str:
        return hmac.new(self._secret, value.encode(), hashlib.sha256).hexdigest()[:48]

    async def is_locked(self, conn: AsyncConnection, keys: list[str], now: datetime) -> bool:
        """A look without counting, for a form that counts its attempt later."""
        return any(until > now for until in await store.locked_until(conn, keys))

    async def admit(
        self, conn: AsyncConnection, limits: list[tuple[str, ThrottlePolicy]], now: datetime
    ) -> datetime | None:
        """Count one attempt under each key; returns when to come back if any limit is reached."""
        refused: list[datetime] = [until for until in await store.locked_until(conn, [k for k, _ in limits]) if until > now]
        if refused:
            return max(refused)
        for key, policy in limits:
            count = await store.count_attempt(conn, key, now=now, window_start=now - policy.window)
            if count.attempts > policy.max_attempts:
                until = now + policy.lockout
                await store.lock(conn, key, until)
                refused.append(until)
        return max(refused, default=None)

    async def admit_waiting(
        self, conn: AsyncConnection, waits: list[tuple[str, Backoff]], limits: list[tuple[str, ThrottlePolicy]],
        now: datetime,
    ) -> datetime | None:
        """Count one attempt under each key, or none under the waits: returns when to come
        back if a key is still waiting or a limit is reached (an address limit reached in
        `admit` still counts that attempt, as the password login's limit always has). A try during a wait changes nothing, so
        it cannot stretch the wait beyond the schedule."""
        locked = [until for until in await store.locked_until(conn, [k for k, _ in limits]) if until > now]
        if locked:
            return max(locked)
        counted = []
        # Each upsert holds its row until the transaction ends, so a parallel try reads the
        # wait this one sets; keys in one order, so that two tries cannot deadlock.
        for key, backoff in sorted(waits, key=lambda wait: wait[0]):
            count = await store.count_attempt(conn, key, now=now, window_start=now - backoff.window)
            counted.append((key, backoff, count))
        waiting = [count.locked_until for _, _, count in counted if count.locked_until and count.locked_until > now]
        refused = max(waiting) if waiting else await self.admit(conn, limits, now)
        if refused is not None:
            for key, _, _ in counted:
                await store.uncount_attempt(conn, key)
            return refused
        for key, backoff, count in counted:
            wait = backoff.wait_after(count.attempts)
            if wait:
                await store.lock(conn, key, now + wait)
        return None

    async def succeeded(self, conn: AsyncConnection, account_key: str, address_key: str) -> None:
        """A right answer: the account starts afresh, the address gets its attempt back."""
        await self.forget(conn, account_key)
        await self.give_back(conn, address_key)

    async def give_back(self, conn: AsyncConnection, key: str) -> None:
        """Take back an attempt that turned out legitimate."""
        await store.uncount_attempt(conn, key)

    async def give_back_wait(self, conn: AsyncConnection, key: str) -> None:
        """Take back an attempt that was never checked, and the wait it set: the wait of
        the failure before it had already passed, or the attempt would not have been let in."""
        await store.uncount_attempt(conn, key, unlock=True)

    async def forget(self, conn: AsyncConnection, key: str) -> None:
        await store.clear_throttle(conn, key)

    async def forget_account(self, conn: AsyncConnection, account_key: str) -> None:
        """The account's waits and those of every address guessing at it."""
        await store.clear_throttle(conn, account_key)
        await store.clear_throttles_under(conn, f"pair:{account_key}:")
