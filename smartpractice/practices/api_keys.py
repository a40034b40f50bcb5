"""API keys: how practice software proves which practice it acts for.

A key looks like `spk_1a2b3c4d_<43 random characters>`. The first twelve characters are
public (they are stored and listed, so an admin can tell keys apart); the whole key is
stored only as its SHA-256. A key carries 256 random bits, so unlike a password it
cannot be guessed from its hash and needs no slow hash; and since keys are looked up
by that hash, no secret is ever compared byte by byte, so timing reveals nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.storage import api_keys as store
from smartpractice.storage.api_keys import ApiKey
from smartpractice.storage.practices import Practice
from smartpractice.submissions import Once, claim, settle

KEY_PREFIX = "spk_"
NAME_MAX = 100
# Longer input is not a key of ours; refusing it early keeps hashing cheap.
KEY_MAX = 100
# last_used_at helps people decide which key to revoke: to the minute is enough, and
# it spares the database a write on nearly every API call.
LAST_USED_PRECISION = timedelta(minutes=1)


class NewApiKey(NamedTuple):
    key_id: int
    key: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, *, engine: AsyncEngine, clock: Clock, audit: Audit) -> None:
        self._engine = engine
        self._clock = clock
        self._audit = audit

    async def create(self, practice: Practice, name: str, *, actor: int | None = None, once: Once | None = None) -> NewApiKey:
        """A new key for the practice; the plain key exists only in the return value. The
        form's `once` token makes a second sending raise AlreadySubmitted: one key."""
        name = name.strip()
        if not name or len(name) > NAME_MAX:
            raise UserError("api_key_name_invalid", N_("Please give the key a name of at most 100 characters."))
        prefix = KEY_PREFIX + secrets.token_hex(4)
        key = f"{prefix}_{secrets.token_urlsafe(32)}"
        async with self._engine.begin() as conn:
            await claim(conn, once, self._clock.now())
            key_id = await store.insert_key(
                conn, practice_id=practice.id, name=name, prefix=prefix, key_hash=hash_key(key),
                now=self._clock.now(),
            )
            await self._audit.record(conn, practice.id, actor, "api_key_created", "api_key", key_id)
            await settle(conn, once, "api_key", key_id)
        return NewApiKey(key_id, key)

    async def authenticate(self, key: str) -> Practice | None:
        """The practice an unrevoked key belongs to, or None."""
        if not key.startswith(KEY_PREFIX) or len(key) > KEY_MAX or not key.isascii():
            return None
        async with self._engine.connect() as conn:
            found = await store.key_by_hash(conn, hash_key(key))
        if found is None:
            return None
        api_key, practice = found
        if practice.suspended or not practice.confirmed:
            return None  # a practice that may not act cannot act through its software either
        now = self._clock.now()
        if api_key.last_used_at is None or api_key.last_used_at <= now - LAST_USED_PRECISION:
            async with self._engine.begin() as conn:
                await store.mark_used(conn, api_key.id, now)
        return practice

    async def revoke(self, practice_id: int, key_id: int, *, actor: int | None = None) -> None:
        async with self._engine.begin() as conn:
            revoked = await store.revoke_key(conn, practice_id, key_id, self._clock.now())
            if revoked:
                await self._audit.record(conn, practice_id, actor, "api_key_revoked", "api_key", key_id)
        if not revoked:
            raise UserError(
                "api_key_not_found", N_("This practice has no active API key with the id %(key_id)s."),
                key_id=key_id,
            )

    async def list(self, practice_id: int) -> list[ApiKey]:
        async with self._engine.connect() as conn:
            return await store.keys_of(conn, practice_id)
