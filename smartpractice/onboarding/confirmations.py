"""Email confirmation for patients: the mail with its link, the confirmation, a fresh mail."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smartpractice.accounts.throttle import LoginThrottle, ThrottlePolicy
from smartpractice.accounts.tokens import CONFIRM_EMAIL, LinkTokens
from smartpractice.accounts.users import EMAIL
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.mail.outbox import Outbox
from smartpractice.storage import practices as practice_store
from smartpractice.storage import users as user_store
from smartpractice.storage.practices import Practice
from smartpractice.storage.users import User
from smartpractice.submissions import Once, claim, settle

# Each request may send a mail: a few per address and hour serve a person, not a spammer.
ADDRESS_POLICY = ThrottlePolicy(max_attempts=3, window=timedelta(hours=1), lockout=timedelta(hours=1))
CLIENT_POLICY = ThrottlePolicy(max_attempts=20, window=timedelta(hours=1), lockout=timedelta(hours=1))


class Confirmations:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        clock: Clock,
        tokens: LinkTokens,
        outbox: Outbox,
        throttle: LoginThrottle,
        links,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._tokens = tokens
        self._outbox = outbox
        self._throttle = throttle
        self._links = links

    async def send(
        self, conn: AsyncConnection, user: User, practice: Practice, *, created_by_practice: bool,
        kind: str = "confirm_email",
    ) -> None:
        """Write the confirmation mail in the caller's transaction; older links stop working.

        `kind` "confirm_practice" is the mail to the first admin of a practice that signed up.
        """
        token = await self._tokens.issue(conn, user.id, CONFIRM_EMAIL)
        await self._outbox.enqueue(
            conn,
            kind=kind,
            to=user.email,
            language=user.mail_language,
            context={
                "name": user.display_name,
                "practice": practice.name,
                "username": user.username,
                "created_by_practice": created_by_practice,
                "link": self._links.url("confirm_email", token=token),
            },
        )

    async def check(self, token: str) -> User:
        """The user a still-valid link belongs to; raises LinkInvalid."""
        async with self._engine.connect() as conn:
            user = await user_store.user_by_id(conn, await self._tokens.peek(conn, token, CONFIRM_EMAIL))
        assert user is not None  # tokens are deleted with their user
        return user

    async def confirm(self, token: str) -> User:
        async with self._engine.begin() as conn:
            user_id = await self._tokens.consume(conn, token, CONFIRM_EMAIL)
            await user_store.confirm_email(conn, user_id, self._clock.now())
            # The first admin of a signed-up practice confirms the practice with their address.
            await practice_store.confirm_practices_of(conn, user_id, self._clock.now())
            user = await user_store.user_by_id(conn, user_id)
        assert user is not None
        return user

    async def resend(self, email: str, *, address: str, once: Once | None = None) -> None:
        """Mail a new link if an unconfirmed account has this address; silent either way. The
        form's `once` token makes a second sending raise AlreadySubmitted, whatever the first
        did, so a double click mails once and still tells nothing about the address."""
        email = email.strip()
        if len(email) > 254 or not EMAIL.match(email):
            raise UserError("email_invalid", N_("Please enter a valid email address."))
        now = self._clock.now()
        address_key = "confirm:" + self._throttle.account_key(None, email)
        client_key = self._throttle.address_key(address) + ":confirm"
        async with self._engine.begin() as conn:
            await claim(conn, once, now)
            await settle(conn, once, "confirmation_resend", 0)
            limits = [(address_key, ADDRESS_POLICY), (client_key, CLIENT_POLICY)]
            if await self._throttle.admit(conn, limits, now) is not None:
                return  # a visible refusal would tell whether the address is known
            user = await user_store.user_by_login(conn, email)
            if user is None or user.email_confirmed_at is not None:
                return
            memberships = await practice_store.memberships_of(conn, user.id)
            if not memberships:
                return
            # An initial password still to be replaced means the practice made the account.
            practice = memberships[0].practice
            kind = "confirm_email" if practice.confirmed else "confirm_practice"
            await self.send(conn, user, practice, created_by_practice=user.must_change_password, kind=kind)
