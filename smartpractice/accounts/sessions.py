"""Server-side login sessions (ASVS 7): random ids stored hashed, idle and absolute timeouts."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smartpractice.clock import Clock
from smartpractice.storage import login_sessions as store
from smartpractice.storage.engine import read_once_more, read_only
from smartpractice.storage.invitations import invitation_by_id
from smartpractice.storage.login_sessions import LoginSession
from smartpractice.storage.practices import Membership
from smartpractice.storage.users import User

TOKEN_BYTES = 32  # 256 bits; ASVS 7.2.3 asks for at least 128
# Writing last_seen_at on every request would turn each page view into a write.
TOUCH_INTERVAL = timedelta(seconds=60)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ActiveSession:
    session: LoginSession
    user: User
    # Read with the session, so a practice's page needs no query of its own to know the role.
    memberships: tuple[Membership, ...] = ()

    def membership_in(self, slug: str) -> Membership | None:
        return next((m for m in self.memberships if m.practice.slug == slug), None)


@dataclass(frozen=True)
class GuestSession:
    """Someone who came in with a TAN: no account, only their invitation."""

    session: LoginSession
    invitation_id: int
    language: str


class Sessions:
    def __init__(self, *, engine: AsyncEngine, clock: Clock, idle: timedelta, maximum: timedelta,
                 reader: Engine | None = None) -> None:
        self._engine = engine
        self._reads = read_only(engine)
        self.reader = reader
        self._clock = clock
        self.idle = idle
        self.maximum = maximum

    async def start(
        self, conn: AsyncConnection, user_id: int, user_agent: str, *, needs_second_factor: bool = False
    ) -> str:
        """Create a session inside the caller's transaction; returns the cookie value.

        With `needs_second_factor` the session reaches only the second-factor pages until
        `start` is called again without it (a new id once both factors are given).
        """
        return await self._insert(conn, user_agent, user_id=user_id, needs_second_factor=needs_second_factor)

    async def renew(self, session: ActiveSession, user_agent: str) -> str:
        """A new session id in place of the old one, after a credential change (ASVS 7.2.4)."""
        async with self._engine.begin() as conn:
            await store.delete_session(conn, session.session.id)
            return await self.start(conn, session.user.id, user_agent,
                                    needs_second_factor=session.session.needs_second_factor)

    async def start_guest(self, conn: AsyncConnection, invitation_id: int, user_agent: str, *,
                          expires_at: datetime) -> str:
        """A TAN guest's session: it lasts as long as their invitation (its consultation's
        end plus the grace period), not the staff's maximum; the idle timeout still holds,
        and an open waiting page keeps it from running out."""
        return await self._insert(conn, user_agent, invitation_id=invitation_id, expires_at=expires_at)

    async def _insert(self, conn: AsyncConnection, user_agent: str, *, expires_at: datetime | None = None,
                      **owner: int | bool) -> str:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock.now()
        await store.insert_session(
            conn,
            token_hash=token_hash(token),
            now=now,
            expires_at=expires_at or now + self.maximum,
            user_agent=user_agent[:200],
            **cast("dict[str, Any]", {"user_id": None, **owner}),
        )
        return token

    async def resume(self, token: str) -> ActiveSession | GuestSession | None:
        """The session behind a cookie. Most requests only read: one statement, and a write
        only when the session ran out or is due to be touched."""
        now = self._clock.now()
        found = await self._find(token_hash(token))
        if found is None:
            return None
        session, owner = found
        if session.expires_at <= now or session.last_seen_at + self.idle <= now:
            await self.end(session.id)
            return None
        guest = session.user_id is None
        touch = now - session.last_seen_at >= TOUCH_INTERVAL
        if guest or touch:
            async with self._engine.begin() as conn:
                if touch:
                    await store.touch(conn, session.id, now)
                if guest:
                    return await self._guest(conn, session, now)
        return None if owner is None else ActiveSession(session, owner.user, owner.memberships)

    async def _find(self, hashed: str) -> tuple[LoginSession, store.SessionOwner | None] | None:
        if self.reader is not None:
            try:
                with self.reader.connect() as conn:
                    return store.session_with_owner_now(conn, hashed)
            except OperationalError as error:
                if "database is locked" not in str(error.orig):
                    raise
                # Held longer than a read in the loop may wait: aiosqlite's thread waits instead.
        return await read_once_more(self._reads, lambda conn: store.session_with_owner(conn, hashed))

    async def _guest(self, conn: AsyncConnection, session: LoginSession, now) -> GuestSession | None:
        if session.invitation_id is None:
            return None
        invitation = await invitation_by_id(conn, session.invitation_id)
        if invitation is None or invitation.revoked_at or invitation.expires_at <= now:
            await store.delete_session(conn, session.id)
            return None
        return GuestSession(session, invitation.id, invitation.language)

    async def end(self, session_id: int) -> None:
        async with self._engine.begin() as conn:
            await store.delete_session(conn, session_id)

    async def end_own(self, user_id: int, session_id: int) -> bool:
        async with self._engine.begin() as conn:
            return await store.delete_session_of(conn, user_id, session_id)

    async def end_all(self, user_id: int, *, keep: int | None = None) -> int:
        async with self._engine.begin() as conn:
            return await store.delete_sessions_of(conn, user_id, keep=keep)

    async def list(self, user_id: int) -> list[LoginSession]:
        async with self._engine.connect() as conn:
            return await store.sessions_of(conn, user_id)
