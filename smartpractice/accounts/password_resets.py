"""Password reset by mail: a one-hour link, every session ended, the owner told."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.accounts.passwords import Passwords
from smartpractice.accounts.sessions import Sessions
from smartpractice.accounts.throttle import LoginThrottle, ThrottlePolicy
from smartpractice.accounts.tokens import RESET_PASSWORD, LinkTokens
from smartpractice.accounts.users import Users
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.mail.outbox import Outbox
from smartpractice.storage import users as user_store
from smartpractice.storage.users import User
from smartpractice.submissions import Once, claim, settle

# Each request sends a mail: a few per hour is plenty for a person, little for a spammer.
REQUEST_POLICY = ThrottlePolicy(max_attempts=5, window=timedelta(hours=1), lockout=timedelta(hours=1))


class PasswordResets:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        clock: Clock,
        passwords: Passwords,
        sessions: Sessions,
        tokens: LinkTokens,
        outbox: Outbox,
        throttle: LoginThrottle,
        links,
        users: Users,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._passwords = passwords
        self._sessions = sessions
        self._tokens = tokens
        self._outbox = outbox
        self._throttle = throttle
        self._links = links
        self._users = users

    async def request(self, identifier: str, *, address: str, once: Once | None = None) -> None:
        """Mail a reset link if the account exists; the caller shows the same page either way.
        The form's `once` token makes a second sending raise AlreadySubmitted, whatever the
        first did: a double click mails one link and does not void it with a second."""
        now = self._clock.now()
        identifier = identifier.strip()[:254]
        limits = [
            ("reset:" + self._throttle.address_key(address), REQUEST_POLICY),
            ("reset:" + self._throttle.account_key(None, identifier), REQUEST_POLICY),
        ]
        async with self._engine.begin() as conn:
            await claim(conn, once, now)
            await settle(conn, once, "password_reset", 0)
            if await self._throttle.admit(conn, limits, now) is not None:
                return  # silently: a visible refusal would confirm the address to an attacker
            user = await user_store.user_by_login(conn, identifier) if identifier else None
            if user is None:
                return
            token = await self._tokens.issue(conn, user.id, RESET_PASSWORD)
            await self._outbox.enqueue(
                conn,
                kind="password_reset",
                to=user.email,
                language=user.mail_language,
                context={"name": user.display_name, "link": self._links.url("password_reset_link", token=token)},
            )

    async def check_link(self, token: str) -> User:
        async with self._engine.connect() as conn:
            user_id = await self._tokens.peek(conn, token, RESET_PASSWORD)
            user = await user_store.user_by_id(conn, user_id)
        assert user is not None  # tokens are deleted with their user
        return user

    async def reset(self, token: str, new_password: str, repeated: str) -> User:
        """Set the new password, end every session, confirm the address, tell the owner."""
        user = await self.check_link(token)
        if new_password != repeated:
            raise UserError("password_mismatch", N_("The two new passwords are not the same."))
        await self._users.check_new_password(user, new_password)
        new_hash = await self._passwords.hash(new_password)
        now = self._clock.now()
        async with self._engine.begin() as conn:
            await self._tokens.consume(conn, token, RESET_PASSWORD)
            await user_store.set_password(conn, user.id, new_hash, now=now)
            # Following the link proved the address is theirs.
            await user_store.confirm_email(conn, user.id, now)
            await self._throttle.forget_account(conn, self._throttle.account_key(user.id, user.username))
            await self._users.notify_password_changed(conn, user)
        await self._sessions.end_all(user.id)
        return user
