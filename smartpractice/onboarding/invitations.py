"""TAN invitations: someone without an account joins by a mailed link and a one-time code.

The TAN has 8 digits (26.6 bits; ASVS 6.5.4 asks for 20): digits are the easiest to read
out on the phone and none can be mistaken for another. It is bound to its invitation (the
link's token finds the invitation, the TAN is checked against that one only), used once,
and five wrong tries lock the invitation until the practice reissues it (ASVS 6.6.3).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smartpractice.accounts.sessions import Sessions
from smartpractice.accounts.throttle import ADDRESS_POLICY, LoginThrottle
from smartpractice.accounts.tokens import LinkInvalid, hash_token
from smartpractice.accounts.users import EMAIL
from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import LANGUAGES, N_
from smartpractice.mail.outbox import Outbox
from smartpractice.practices.settings import TAN_DELIVERIES
from smartpractice.storage import invitations as store
from smartpractice.storage.consultations import policy_of
from smartpractice.storage.invitations import Invitation
from smartpractice.storage.login_sessions import delete_sessions_of_invitation
from smartpractice.storage.practices import Practice
from smartpractice.times import spoken

TAN_DIGITS = 8
MAX_TAN_FAILURES = 5
# Across reissues: past this, the practice makes a new invitation instead.
MAX_TOTAL_FAILURES = 15


@dataclass(frozen=True)
class InvitationView:
    id: int
    email: str
    display_name: str
    language: str
    state: str  # pending, used, locked, revoked, expired
    created_at: datetime
    expires_at: datetime
    consultation_id: int | None = None


@dataclass(frozen=True)
class Invitee:
    """Someone to invite by mail, checked where the input enters."""

    email: str
    display_name: str
    language: str

    @classmethod
    def parse(cls, email: str, display_name: str = "", language: str = "de") -> Invitee:
        email, display_name = email.strip(), display_name.strip()
        if len(email) > 254 or not EMAIL.match(email):
            raise UserError("email_invalid", N_("Please enter a valid email address."))
        if len(display_name) > 200:
            raise UserError("display_name_invalid", N_("Please enter a name of at most 200 characters."))
        if language not in LANGUAGES:
            raise UserError("language_invalid", N_("Please choose German or English."))
        return cls(email, display_name, language)


class ConsultationMail(Protocol):
    """What an invitation to a scheduled consultation adds to its mail (see scheduling)."""

    consultation_id: int

    def when(self, language: str) -> str: ...

    def calendar(self, email: str, language: str, url: str) -> str: ...


@dataclass(frozen=True)
class NewInvitation:
    invitation: InvitationView
    tan: str
    tan_in_mail: bool


@dataclass(frozen=True)
class GuestWelcome:
    invitation: InvitationView
    practice: str
    clinician: str | None


def state_of(invitation: Invitation, now: datetime) -> str:
    if invitation.revoked_at:
        return "revoked"
    if invitation.locked_at:
        return "locked"
    if invitation.tan_used_at:
        return "used"
    if invitation.expires_at <= now:
        return "expired"
    return "pending"


def normalize_tan(typed: str) -> str:
    return "".join(character for character in typed if character.isdigit())


class Invitations:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        clock: Clock,
        outbox: Outbox,
        links,
        sessions: Sessions,
        throttle: LoginThrottle,
        secret: str,
        lifetime: timedelta,
        audit: Audit,
    ) -> None:
        self._audit = audit
        self._engine = engine
        self._clock = clock
        self._outbox = outbox
        self._links = links
        self._sessions = sessions
        self._throttle = throttle
        self._secret = secret.encode()
        self._lifetime = lifetime

    def _tan_hmac(self, tan: str) -> str:
        return hmac.new(self._secret, normalize_tan(tan).encode(), hashlib.sha256).hexdigest()

    def _view(self, invitation: Invitation) -> InvitationView:
        return InvitationView(
            id=invitation.id,
            email=invitation.email,
            display_name=invitation.display_name,
            language=invitation.language,
            state=state_of(invitation, self._clock.now()),
            created_at=invitation.created_at,
            expires_at=invitation.expires_at,
            consultation_id=invitation.consultation_id,
        )

    async def invite(
        self, practice: Practice, *, email: str, display_name: str = "", invited_by: int | None, language: str = "de"
    ) -> NewInvitation:
        """An ad-hoc invitation, valid for the configured lifetime."""
        async with self._engine.begin() as conn:
            return await self.invite_in(
                conn, practice, Invitee.parse(email, display_name, language), invited_by=invited_by,
                expires_at=self._clock.now() + self._lifetime,
            )

    async def invite_in(
        self,
        conn: AsyncConnection,
        practice: Practice,
        invitee: Invitee,
        *,
        invited_by: int | None,
        expires_at: datetime,
        consultation: ConsultationMail | None = None,
    ) -> NewInvitation:
        """Create and mail an invitation in the caller's transaction."""
        link, tan = secrets.token_urlsafe(32), self._new_tan()
        invitation_id = await store.insert_invitation(
            conn,
            practice_id=practice.id,
            invited_by=invited_by,
            email=invitee.email,
            display_name=invitee.display_name,
            language=invitee.language,
            link_hash=hash_token(link),
            tan_hmac=self._tan_hmac(tan),
            now=self._clock.now(),
            expires_at=expires_at,
            consultation_id=consultation.consultation_id if consultation else None,
        )
        invitation = await store.invitation_by_id(conn, invitation_id)
        assert invitation is not None
        tan_in_mail = await self._send(conn, invitation, link, tan, consultation)
        await self._audit.record(conn, practice.id, invited_by, "invitation_sent", "invitation", invitation_id)
        return NewInvitation(self._view(invitation), tan, tan_in_mail)

    def _new_tan(self) -> str:
        digits = "".join(secrets.choice("0123456789") for _ in range(TAN_DIGITS))
        return f"{digits[:4]} {digits[4:]}"

    async def _send(
        self, conn: AsyncConnection, invitation: Invitation, link: str, tan: str,
        consultation: ConsultationMail | None = None,
    ) -> bool:
        tan_in_mail = await store.tan_delivery_of(conn, invitation.practice_id) == "mail"
        clinician, practice = await store.inviter_and_practice(conn, invitation)
        link_url = self._links.url("invitation_login", token=link)
        zone = (await policy_of(conn, invitation.practice_id)).time_zone
        until = spoken(invitation.expires_at, zone, invitation.language)
        await self._outbox.enqueue(
            conn,
            kind="invitation",
            to=invitation.email,
            language=invitation.language,
            context={
                "name": invitation.display_name,
                "clinician": clinician,
                "practice": practice,
                "link": link_url,
                "tan": tan if tan_in_mail else None,
                "valid_until": until,
                "when": consultation.when(invitation.language) if consultation else None,
            },
            calendar=consultation.calendar(invitation.email, invitation.language, link_url) if consultation else None,
        )
        return tan_in_mail

    async def get(self, practice_id: int, invitation_id: int) -> InvitationView | None:
        async with self._engine.connect() as conn:
            invitation = await store.invitation_of(conn, practice_id, invitation_id)
        return None if invitation is None else self._view(invitation)

    async def list(self, practice_id: int) -> list[InvitationView]:
        async with self._engine.connect() as conn:
            return [self._view(invitation) for invitation in await store.invitations_of(conn, practice_id)]

    async def revoke(self, practice_id: int, invitation_id: int, *, actor: int | None = None) -> InvitationView | None:
        """Revoke, and end the guest's session at once if they are already in."""
        async with self._engine.begin() as conn:
            if await store.invitation_of(conn, practice_id, invitation_id) is None:
                return None
            await store.revoke(conn, invitation_id, self._clock.now())
            await delete_sessions_of_invitation(conn, invitation_id)
            invitation = await store.invitation_of(conn, practice_id, invitation_id)
            await self._audit.record(conn, practice_id, actor, "invitation_revoked", "invitation", invitation_id)
        assert invitation is not None
        return self._view(invitation)

    async def reissue(self, practice_id: int, invitation_id: int, *, actor: int | None = None) -> NewInvitation | None:
        """A new link and TAN by a new mail; the old ones never work again."""
        async with self._engine.begin() as conn:
            invitation = await store.invitation_of(conn, practice_id, invitation_id)
            if invitation is None:
                return None
            if invitation.revoked_at:
                raise UserError("invitation_revoked", N_("This invitation was revoked. Please create a new one."))
            if invitation.total_failures >= MAX_TOTAL_FAILURES:
                raise UserError(
                    "invitation_exhausted",
                    N_("Too many wrong TANs were entered for this invitation. Please create a new one."),
                )
            link, tan = secrets.token_urlsafe(32), self._new_tan()
            await store.reissue(
                conn, invitation_id, link_hash=hash_token(link), tan_hmac=self._tan_hmac(tan),
                # One bound to a consultation stays valid until that ends (plus grace).
                expires_at=invitation.expires_at if invitation.consultation_id else self._clock.now() + self._lifetime,
            )
            await delete_sessions_of_invitation(conn, invitation_id)
            invitation = await store.invitation_of(conn, practice_id, invitation_id)
            assert invitation is not None
            tan_in_mail = await self._send(conn, invitation, link, tan)
            await self._audit.record(conn, practice_id, actor, "invitation_reissued", "invitation", invitation_id)
        return NewInvitation(self._view(invitation), tan, tan_in_mail)

    async def set_tan_delivery(self, practice_id: int, delivery: str, *, actor: int | None = None) -> None:
        if delivery not in TAN_DELIVERIES:
            raise UserError("tan_delivery_invalid", N_("Please choose where the TAN goes."))
        async with self._engine.begin() as conn:
            await store.set_tan_delivery(conn, practice_id, delivery)
            await self._audit.record(conn, practice_id, actor, "settings_changed", "practice", practice_id)

    async def tan_delivery(self, practice_id: int) -> str:
        async with self._engine.connect() as conn:
            return await store.tan_delivery_of(conn, practice_id)

    async def open_link(self, link: str) -> GuestWelcome:
        """The invitation behind a mailed link, if it can still be used."""
        async with self._engine.connect() as conn:
            invitation = await store.invitation_by_link(conn, hash_token(link)) if len(link) <= 100 else None
            if invitation is None:
                raise LinkInvalid("link_invalid", N_("This link is not valid. Please check that you copied it completely."))
            clinician, practice = await store.inviter_and_practice(conn, invitation)
        state = state_of(invitation, self._clock.now())
        if state != "pending":
            raise LinkInvalid(f"invitation_{state}", _STATE_MESSAGES[state], practice=practice)
        return GuestWelcome(self._view(invitation), practice, clinician)

    async def log_in_with_tan(self, link: str, tan: str, *, address: str, user_agent: str) -> str:
        """Check the TAN against the link's invitation; returns a guest session's cookie value."""
        welcome = await self.open_link(link)
        now = self._clock.now()
        address_key = self._throttle.address_key(address)
        async with self._engine.begin() as conn:
            locked_until = await self._throttle.admit(conn, [(address_key, ADDRESS_POLICY)], now)
        if locked_until is not None:
            raise UserError("tan_throttled", N_("Too many attempts from your connection. Please wait a quarter of an hour."))
        async with self._engine.begin() as conn:
            invitation = await store.invitation_by_id(conn, welcome.invitation.id)
            assert invitation is not None
            if not hmac.compare_digest(invitation.tan_hmac, self._tan_hmac(tan)):
                failures = await store.count_tan_failure(conn, invitation.id)
                if failures >= MAX_TAN_FAILURES:
                    await store.lock(conn, invitation.id, now)
                    wrong = UserError("invitation_locked", _STATE_MESSAGES["locked"], practice=welcome.practice)
                else:
                    wrong = UserError(
                        "tan_wrong", N_("This TAN is not correct. %(left)d tries are left."),
                        left=MAX_TAN_FAILURES - failures,
                    )
            else:
                wrong = None
                if not await store.use_tan(conn, invitation.id, now):
                    raise LinkInvalid("invitation_used", _STATE_MESSAGES["used"], practice=welcome.practice)
                await self._throttle.give_back(conn, address_key)
                token = await self._sessions.start_guest(conn, invitation.id, user_agent)
        if wrong is not None:
            raise wrong
        return token

    async def welcome(self, invitation_id: int) -> GuestWelcome | None:
        """What the guest's page shows: who invited them, from where, until when."""
        async with self._engine.connect() as conn:
            invitation = await store.invitation_by_id(conn, invitation_id)
            if invitation is None:
                return None
            clinician, practice = await store.inviter_and_practice(conn, invitation)
        return GuestWelcome(self._view(invitation), practice, clinician)


_STATE_MESSAGES = {
    "used": N_("This invitation's TAN has already been used. If you need to join again, please ask %(practice)s for a new invitation."),
    "locked": N_("Too many wrong TANs were entered, so this invitation is locked. Please ask %(practice)s to send it again."),
    "revoked": N_("%(practice)s has withdrawn this invitation."),
    "expired": N_("This invitation has expired. Please ask %(practice)s for a new one."),
}
