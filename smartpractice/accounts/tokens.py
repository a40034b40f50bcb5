"""One-time link tokens (ASVS 11.5.1, 6.5.1): 256 random bits, stored hashed, single use, expiring."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.storage import link_tokens as store
from smartpractice.times import DEFAULT_ZONE, SpokenTime

CONFIRM_EMAIL = "confirm_email"
RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose name, not a password
CHANGE_EMAIL = "change_email"
LIFETIMES = {
    CONFIRM_EMAIL: timedelta(hours=48),
    RESET_PASSWORD: timedelta(hours=1),
    # It moves the login to another address, so it lives as briefly as a reset link.
    CHANGE_EMAIL: timedelta(hours=1),
}


class LinkInvalid(UserError):
    status = 410


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class LinkTokens:
    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock

    async def issue(self, conn: AsyncConnection, user_id: int, purpose: str) -> str:
        """A new link token; earlier unused ones of the same purpose stop working."""
        now = self._clock.now()
        await store.invalidate_tokens(conn, user_id, purpose, now)
        token = secrets.token_urlsafe(32)
        await store.insert_token(
            conn,
            purpose=purpose,
            token_hash=hash_token(token),
            user_id=user_id,
            now=now,
            expires_at=now + LIFETIMES[purpose],
        )
        return token

    async def revoke(self, conn: AsyncConnection, user_id: int, purpose: str) -> None:
        """Unused links of this purpose stop working."""
        await store.invalidate_tokens(conn, user_id, purpose, self._clock.now())

    async def peek(self, conn: AsyncConnection, token: str, purpose: str) -> int:
        """The user a still-valid token belongs to, without using it up."""
        found = await store.token_by_hash(conn, hash_token(token)) if len(token) <= 100 else None
        if found is None or found.purpose != purpose:
            raise LinkInvalid("link_invalid", N_("This link is not valid. Please check that you copied it completely."))
        if found.used_at is not None:
            if await store.replaced(conn, found):
                raise LinkInvalid("link_replaced", N_("A newer mail with a new link was sent since, which replaces this one. Please use the link in the most recent mail."))
            raise LinkInvalid("link_used", N_("This link has already been used."))
        if found.expires_at <= self._clock.now():
            zone = await store.time_zone_of(conn, found.user_id) or DEFAULT_ZONE
            raise LinkInvalid("link_expired", N_("This link expired on %(when)s. You can ask for a new one."),
                              when=SpokenTime(found.expires_at, zone))
        return found.user_id

    async def consume(self, conn: AsyncConnection, token: str, purpose: str) -> int:
        """Use the token up inside the caller's transaction; returns its user."""
        user_id = await self.peek(conn, token, purpose)
        found = await store.token_by_hash(conn, hash_token(token))
        if found is None or not await store.use_token(conn, found.id, self._clock.now()):
            raise LinkInvalid("link_used", N_("This link has already been used."))
        return user_id
