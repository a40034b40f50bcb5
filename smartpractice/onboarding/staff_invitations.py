"""New staff join by email: the admin invites, the invitee chooses a password and sets up an app.

The link carries 256 random bits, stored as a hash, and works once within seven days.
Following it proves the address, so the account starts confirmed. Invitations go only to
addresses without an account; people who already have one are added by the operator.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.accounts.passwords import Passwords, check_password
from smartpractice.accounts.sessions import Sessions
from smartpractice.accounts.tokens import LinkInvalid, hash_token
from smartpractice.accounts.users import EMAIL, validate_identity
from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import LANGUAGES, N_
from smartpractice.mail.outbox import Outbox
from smartpractice.names import tidy
from smartpractice.practices.plans import Plans
from smartpractice.storage import practices as practice_store
from smartpractice.storage import staff_invitations as store
from smartpractice.storage import users as user_store
from smartpractice.storage.practices import Practice
from smartpractice.storage.staff_invitations import StaffInvitation
from smartpractice.storage.users import User
from smartpractice.submissions import Once, claim, sent_before, settle

LIFETIME = timedelta(days=7)
ROLES = ("admin", "clinician")


@dataclass(frozen=True)
class Newcomer:
    """What the invitee typed on the invitation's form."""

    display_name: str
    username: str
    password: str
    password_repeat: str
    language: str


class StaffInvitations:
    def __init__(
        self, *, engine: AsyncEngine, clock: Clock, passwords: Passwords, sessions: Sessions, outbox: Outbox,
        links, audit: Audit, plans: Plans,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._passwords = passwords
        self._sessions = sessions
        self._outbox = outbox
        self._links = links
        self._audit = audit
        self._plans = plans

    async def invite(self, practice: Practice, *, email: str, role: str, inviter: User, once: Once | None = None) -> int:
        """The form's `once` token makes a second sending raise AlreadySubmitted: one invitation, one mail."""
        email = email.strip()
        if len(email) > 254 or not EMAIL.match(email):
            raise UserError("email_invalid", N_("Please enter a valid email address."))
        if role not in ROLES:
            raise UserError("role_invalid", N_("Please choose a role."))
        token = secrets.token_urlsafe(32)
        now = self._clock.now()
        async with self._engine.begin() as conn:
            await claim(conn, once, now)
            if "email" in await user_store.taken(conn, username="", email=email):
                raise UserError("email_taken", N_("An account with this email address already exists."))
            if role == "clinician":
                reserved = await store.count_open(conn, practice.id, "clinician", now)
                await self._plans.require_free_seat(conn, practice.id, reserved=reserved)
            invitation_id = await store.insert_invitation(
                conn, practice_id=practice.id, invited_by=inviter.id, email=email, role=role,
                token_hash=hash_token(token), now=now, expires_at=now + LIFETIME,
            )
            await self._outbox.enqueue(
                conn,
                kind="staff_invitation",
                to=email,
                language=inviter.mail_language,
                context={
                    "practice": practice.name, "inviter": inviter.display_name, "role": role,
                    "link": self._links.url("staff_invitation", token=token), "days": LIFETIME.days,
                },
            )
            await self._audit.record(conn, practice.id, inviter.id, "staff_invited", "staff_invitation", invitation_id)
            await settle(conn, once, "staff_invitation", invitation_id)
        return invitation_id

    async def list(self, practice_id: int) -> list[StaffInvitation]:
        async with self._engine.connect() as conn:
            return await store.open_invitations(conn, practice_id, self._clock.now())

    async def revoke(self, practice_id: int, invitation_id: int, *, actor: int) -> bool:
        async with self._engine.begin() as conn:
            revoked = await store.revoke(conn, practice_id, invitation_id, self._clock.now())
            if revoked:
                await self._audit.record(conn, practice_id, actor, "staff_invitation_revoked", "staff_invitation", invitation_id)
        return revoked

    async def open(self, token: str) -> StaffInvitation:
        async with self._engine.connect() as conn:
            found = await store.by_token_hash(conn, hash_token(token)) if len(token) <= 100 else None
        if found is None or found.revoked_at is not None:
            raise LinkInvalid("link_invalid", N_("This link is not valid. Please check that you copied it completely."))
        if found.accepted_at is not None:
            raise LinkInvalid("link_used", N_("This link has already been used."))
        if found.expires_at <= self._clock.now():
            raise LinkInvalid("link_expired", N_("This link has expired."))
        return found

    async def accept(self, token: str, newcomer: Newcomer, *, user_agent: str, once: Once | None = None) -> str:
        """Create the account and membership; returns a session that still needs the second factor.
        The form's `once` token makes a second sending (a double click whose first answer the
        browser dropped) raise AlreadySubmitted rather than "link already used"."""
        await sent_before(self._engine, once, self._clock.now())
        invitation = await self.open(token)
        username, display_name = newcomer.username.strip(), tidy(newcomer.display_name)
        validate_identity(username, invitation.email, display_name)
        if newcomer.password != newcomer.password_repeat:
            raise UserError("password_mismatch", N_("The two passwords are not the same."))
        check_password(
            newcomer.password, staff=True, context=(username, invitation.email, display_name, invitation.practice_name)
        )
        password_hash = await self._passwords.hash(newcomer.password)
        now = self._clock.now()
        try:
            async with self._engine.begin() as conn:
                await claim(conn, once, now)
                taken = await user_store.taken(conn, username=username, email=invitation.email)
                if "username" in taken:
                    raise UserError("username_taken", N_("This user name is already taken."))
                if "email" in taken:
                    raise UserError("email_taken", N_("An account with this email address already exists."))
                if not await store.mark_accepted(conn, invitation.id, now):
                    raise LinkInvalid("link_used", N_("This link has already been used."))
                if invitation.role == "clinician":
                    await self._plans.require_free_seat(conn, invitation.practice_id)
                user_id = await user_store.insert_user(
                    conn, username=username, email=invitation.email, display_name=display_name,
                    password_hash=password_hash, must_change_password=False, initial_password_expires_at=None,
                    email_confirmed_at=now, language=newcomer.language if newcomer.language in LANGUAGES else None,
                    now=now,
                )
                await practice_store.add_member(
                    conn, practice_id=invitation.practice_id, user_id=user_id, role=invitation.role, now=now
                )
                await self._audit.record(conn, invitation.practice_id, user_id, "staff_joined", "user", user_id)
                await settle(conn, once, "user", user_id)
                return await self._sessions.start(conn, user_id, user_agent, needs_second_factor=True)
        except IntegrityError:
            raise UserError("account_conflict", N_("The account could not be created. Please try again.")) from None
