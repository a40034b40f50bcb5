"""Rate limits (ASVS 6.3.1): per account and per client address, surviving restarts.

Every attempt is counted before the password is checked, in one statement per key, so
that many requests in parallel cannot all pass the check before any failure is recorded.
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


def minutes_left(locked_until: datetime, now: datetime) -> int:
    """Whole minutes to tell someone who must wait, never zero."""
    return max(1, int((locked_until - now).total_seconds() // 60) + 1)


ACCOUNT_POLICY = ThrottlePolicy(max_attempts=5, window=timedelta(minutes=15), lockout=timedelta(minutes=15))
ADDRESS_POLICY = ThrottlePolicy(max_attempts=30, window=timedelta(minutes=15), lockout=timedelta(minutes=15))


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

    async def succeeded(self, conn: AsyncConnection, account_key: str, address_key: str) -> None:
        """A right answer: the account starts afresh, the address gets its attempt back."""
        await self.forget(conn, account_key)
        await self.give_back(conn, address_key)

    async def give_back(self, conn: AsyncConnection, key: str) -> None:
        """Take back an attempt that turned out legitimate."""
        await store.uncount_attempt(conn, key)

    async def forget(self, conn: AsyncConnection, key: str) -> None:
        await store.clear_throttle(conn, key)
