"""Changing one's own email address (issue 7, BSI TR-03161 O.Auth).

The address is also a login name and where reset links go, so a change needs the
password (and the second factor, if the user has one), takes effect only once a
one-hour link mailed to the new address is followed, and the old address is told both
times. An address that belongs to another account is not revealed (ASVS 6.3.8): the
requester sees and receives the same as for a free one; its owner is sent nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smartpractice.accounts.login import Login
from smartpractice.accounts.second_factor import SecondFactors
from smartpractice.accounts.sessions import Sessions
from smartpractice.accounts.throttle import LoginThrottle, ThrottlePolicy, minutes_left
from smartpractice.accounts.tokens import CHANGE_EMAIL, LinkInvalid, LinkTokens
from smartpractice.accounts.users import EMAIL
from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import N_, NP_
from smartpractice.mail.outbox import Outbox
from smartpractice.storage import users as user_store
from smartpractice.storage.practices import staff_practice_ids
from smartpractice.storage.users import User
from smartpractice.submissions import Once, claim, sent_before, settle

# Each request mails an address the requester chose: enough for typos, useless for spam.
REQUEST_POLICY = ThrottlePolicy(max_attempts=5, window=timedelta(hours=1), lockout=timedelta(hours=1))


class EmailTaken(UserError):
    status = 409


@dataclass(frozen=True)
class PendingChange:
    user: User
    new_email: str


def _taken() -> EmailTaken:
    return EmailTaken(
        "email_taken_meanwhile",
        N_("This email address now belongs to another account, so it cannot become yours. "
           "Your email address was not changed."),
    )


class EmailChanges:
    def __init__(
        self, *, engine: AsyncEngine, clock: Clock, login: Login, second_factors: SecondFactors, tokens: LinkTokens,
        outbox: Outbox, throttle: LoginThrottle, sessions: Sessions, audit: Audit, links,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._login = login
        self._factors = second_factors
        self._tokens = tokens
        self._outbox = outbox
        self._throttle = throttle
        self._sessions = sessions
        self._audit = audit
        self._links = links

    async def request(
        self, user: User, new_email: str, password: str, code: str, *, address: str, once: Once | None = None,
    ) -> None:
        """Re-authenticate, then mail a link to the new address and a notice to the old one.
        The form's `once` token makes a second sending raise AlreadySubmitted: a reload or a
        double click mails one link, and does not void it with a second."""
        new_email = new_email.strip()
        if len(new_email) > 254 or not EMAIL.match(new_email):
            raise UserError("email_invalid", N_("Please enter a valid email address."))
        if new_email.casefold() == user.email.casefold():
            raise UserError("email_unchanged", N_("This is already your email address."))
        # A reload is not asked to prove itself again (its one-time code is used up, and a
        # failure would count against the account); nor is a double click's second sending,
        # whose code the first one used up while this one was on its way.
        await sent_before(self._engine, once, self._clock.now())
        try:
            await self._reauthenticate(user, password, code, address=address)
        except UserError:
            await sent_before(self._engine, once, self._clock.now())
            raise
        now = self._clock.now()
        async with self._engine.begin() as conn:
            await claim(conn, once, now)
            await settle(conn, once, "email_change", user.id)
            key = "email-change:" + self._throttle.account_key(user.id, user.username)
            locked_until = await self._throttle.admit(conn, [(key, REQUEST_POLICY)], now)
            if locked_until is None:
                await self._record_request(conn, user, new_email)
        if locked_until is not None:
            raise UserError(
                "email_change_locked",
                NP_("You asked for too many changes of your email address. Please try again in %(minutes)d minute.",
                    "You asked for too many changes of your email address. Please try again in %(minutes)d minutes."),
                number="minutes", minutes=minutes_left(locked_until, now),
            )

    async def _reauthenticate(self, user: User, password: str, code: str, *, address: str) -> None:
        await self._login.verify_current_password(user, password, address=address)
        if await self._factors.is_enrolled(user.id):
            if not code.strip():
                raise UserError(
                    "second_factor_missing",
                    N_("Please also enter the current code from your authenticator app, or a recovery code."),
                )
            await self._factors.verify(user, code, address=address)

    async def _record_request(self, conn: AsyncConnection, user: User, new_email: str) -> None:
        if await user_store.email_owner(conn, new_email) is None:
            await user_store.set_pending_email(conn, user.id, new_email)
            token = await self._tokens.issue(conn, user.id, CHANGE_EMAIL)
            await self._outbox.enqueue(
                conn, kind="email_change_confirm", to=new_email, language=user.mail_language,
                context={"name": user.display_name, "link": self._links.url("email_change_link", token=token)},
            )
        else:
            # Taken: an earlier request's link must not confirm anything either.
            await user_store.set_pending_email(conn, user.id, None)
            await self._tokens.revoke(conn, user.id, CHANGE_EMAIL)
        await self._notify(conn, user, "email_change_requested", new_email)
        await self._audit.record_in_each(
            conn, await staff_practice_ids(conn, user.id), user.id, "email_change_requested", "user", user.id
        )

    async def check(self, token: str) -> PendingChange:
        """The change a still-valid link stands for, without making it; raises LinkInvalid."""
        async with self._engine.connect() as conn:
            user = await user_store.user_by_id(conn, await self._tokens.peek(conn, token, CHANGE_EMAIL))
        assert user is not None  # tokens are deleted with their user
        if user.pending_email is None:
            raise _no_change()
        return PendingChange(user, user.pending_email)

    async def confirm(self, token: str, *, current_user_id: int | None, current_session_id: int | None) -> User:
        """Make the pending address the user's own, tell the old one, end the other sessions.

        The browser that follows the link keeps its session if it is the user's own; every
        other session ends, as after a password change (ASVS 7.4.3).
        """
        now = self._clock.now()
        try:
            async with self._engine.begin() as conn:
                user = await user_store.user_by_id(conn, await self._tokens.consume(conn, token, CHANGE_EMAIL))
                assert user is not None
                new_email = user.pending_email
                if new_email is None:
                    raise _no_change()
                if await user_store.email_owner(conn, new_email) is not None:
                    raise _taken()
                await user_store.change_email(conn, user.id, new_email, now)
                await self._notify(conn, user, "email_changed", new_email)
                await self._audit.record_in_each(
                    conn, await staff_practice_ids(conn, user.id), user.id, "email_changed", "user", user.id
                )
        except IntegrityError:
            # Another account took the address between the check and the update.
            raise _taken() from None
        keep = current_session_id if current_user_id == user.id else None
        await self._sessions.end_all(user.id, keep=keep)
        return dataclasses.replace(user, email=new_email, pending_email=None, email_confirmed_at=now)

    async def _notify(self, conn: AsyncConnection, user: User, kind: str, new_email: str) -> None:
        """A notice to the address the account had until now (BSI TR-03161)."""
        await self._outbox.enqueue(
            conn, kind=kind, to=user.email, language=user.mail_language,
            context={"name": user.display_name, "new_email": new_email, "link": self._links.url("password_reset")},
        )


def _no_change() -> LinkInvalid:
    return LinkInvalid("link_invalid", N_("This link is not valid. Please check that you copied it completely."))
