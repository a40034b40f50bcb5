"""TAN invitations: someone without an account joins by a mailed link and a one-time code.

The practice makes them (here, or through scheduling for a consultation), sends them again,
and withdraws them. What the guest does with one, entering the TAN or asking for a new one,
is in guest_access.py; the codes themselves in tans.py.

The TAN is bound to its invitation (the link's token or the invitation's short code finds
the invitation, the TAN is checked against that one only), used once, and five wrong tries
lock the invitation until the practice sends it again (ASVS 6.6.3).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smartpractice.accounts.tokens import hash_token
from smartpractice.accounts.users import EMAIL
from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import LANGUAGES, N_
from smartpractice.links import Links
from smartpractice.mail.outbox import Outbox
from smartpractice.names import tidy
from smartpractice.onboarding.tans import TanHasher, new_code, new_tan, show_code
from smartpractice.practices.settings import TAN_DELIVERIES
from smartpractice.storage import invitations as store
from smartpractice.storage.consultations import consultation_by_id, policy_of
from smartpractice.storage.invitations import Invitation
from smartpractice.storage.login_sessions import delete_sessions_of_invitation
from smartpractice.storage.practices import Practice
from smartpractice.submissions import Once, claim, settle
from smartpractice.times import spoken

MAX_TAN_FAILURES = 5
# Across new TANs and reissues, never reset: at this many the invitation is locked, and
# the practice makes a new one instead.
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
    # As printed, `K7MQ-X2PA`; empty for invitations made before codes existed.
    code: str = ""


@dataclass(frozen=True)
class Invitee:
    """Someone to invite by mail, checked where the input enters."""

    email: str
    display_name: str
    language: str

    @classmethod
    def parse(cls, email: str, display_name: str = "", language: str = "de") -> Invitee:
        email, display_name = email.strip(), tidy(display_name)
        if len(email) > 254 or not EMAIL.match(email):
            raise UserError("email_invalid", N_("Please enter a valid email address."))
        if len(display_name) > 200:
            raise UserError("display_name_invalid", N_("Please enter a name of at most 200 characters."))
        if language not in LANGUAGES:
            raise UserError("language_invalid", N_("Please choose German or English."))
        return cls(email, display_name, language)


class ConsultationMail(Protocol):
    """What an invitation to a scheduled consultation adds to its mail (see scheduling)."""

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
    if invitation.tan_failures >= MAX_TAN_FAILURES:
        return "voided"  # its TAN, not the invitation: a new one can be sent
    return "pending"


def view_of(invitation: Invitation, now: datetime) -> InvitationView:
    return InvitationView(
        id=invitation.id,
        email=invitation.email,
        display_name=invitation.display_name,
        language=invitation.language,
        state=state_of(invitation, now),
        created_at=invitation.created_at,
        expires_at=invitation.expires_at,
        consultation_id=invitation.consultation_id,
        code=show_code(invitation.code) if invitation.code else "",
    )


async def upcoming_start(conn: AsyncConnection, invitation: Invitation, now: datetime) -> datetime | None:
    """The start of the invitation's consultation, if that is still ahead."""
    if invitation.consultation_id is None:
        return None
    consultation = await consultation_by_id(conn, invitation.consultation_id)
    return consultation.starts_at if consultation is not None and consultation.starts_at > now else None


class Invitations:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        clock: Clock,
        outbox: Outbox,
        links: Links,
        tan_hmac: TanHasher,
        lifetime: timedelta,
        audit: Audit,
    ) -> None:
        self._audit = audit
        self._engine = engine
        self._clock = clock
        self._outbox = outbox
        self._links = links
        self._tan_hmac = tan_hmac
        # How long an invitation without a planned time stays valid (SMARTPRACTICE_TAN_HOURS).
        self.lifetime = lifetime

    def _view(self, invitation: Invitation) -> InvitationView:
        return view_of(invitation, self._clock.now())

    async def invite(
        self, practice: Practice, *, email: str, display_name: str = "", invited_by: int | None, language: str = "de"
    ) -> NewInvitation:
        """An invitation bound to no consultation, valid for the configured lifetime. The
        pages and the API invite through scheduling instead (an instant consultation)."""
        async with self._engine.begin() as conn:
            return await self.invite_in(
                conn, practice, Invitee.parse(email, display_name, language), invited_by=invited_by,
                expires_at=self._clock.now() + self.lifetime,
            )

    async def invite_in(
        self,
        conn: AsyncConnection,
        practice: Practice,
        invitee: Invitee,
        *,
        invited_by: int | None,
        expires_at: datetime,
        consultation_id: int | None = None,
        mail: ConsultationMail | None = None,
    ) -> NewInvitation:
        """Create and mail an invitation in the caller's transaction. `mail` adds the
        consultation's time and calendar entry (not for one that starts right away)."""
        link, tan = secrets.token_urlsafe(32), new_tan()
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
            consultation_id=consultation_id,
            code=await self._unused_code(conn),
        )
        invitation = await store.invitation_by_id(conn, invitation_id)
        assert invitation is not None
        tan_in_mail = await self._send(conn, invitation, link, tan, mail)
        await self._audit.record(conn, practice.id, invited_by, "invitation_sent", "invitation", invitation_id)
        return NewInvitation(self._view(invitation), tan, tan_in_mail)

    async def _unused_code(self, conn: AsyncConnection) -> str:
        # 31^8 codes: a clash is rare enough that trying again is all it takes.
        while await store.code_taken(conn, code := new_code()):
            pass
        return code

    async def _send(
        self, conn: AsyncConnection, invitation: Invitation, link: str, tan: str, mail: ConsultationMail | None = None,
    ) -> bool:
        tan_in_mail = await store.tan_delivery_of(conn, invitation.practice_id) == "mail"
        clinician, practice = await store.inviter_and_practice(conn, invitation)
        link_url = self._links.url("invitation_login", token=link)
        zone = (await policy_of(conn, invitation.practice_id)).time_zone
        language = invitation.language
        when: str | None
        if mail is not None:
            when = mail.when(language)
        else:
            start = await upcoming_start(conn, invitation, self._clock.now())
            when = spoken(start, zone, language) if start else None
        await self._outbox.enqueue(
            conn,
            kind="invitation",
            to=invitation.email,
            language=language,
            context={
                "name": invitation.display_name,
                "clinician": clinician,
                "practice": practice,
                "link": link_url,
                "tan": tan if tan_in_mail else None,
                "code": show_code(invitation.code) if invitation.code else None,
                "login": self._links.url("login"),
                "valid_until": spoken(invitation.expires_at, zone, language),
                "when": when,
            },
            calendar=mail.calendar(invitation.email, language, link_url) if mail else None,
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

    async def reissue(self, practice_id: int, invitation_id: int, *, actor: int | None = None,
                      once: Once | None = None) -> NewInvitation | None:
        """A new link and TAN by a new mail; the old ones never work again. The short
        code stays: it only finds the invitation. The button's `once` token makes a second
        sending raise AlreadySubmitted, so a double click does not void the TAN just mailed."""
        async with self._engine.begin() as conn:
            invitation = await store.invitation_of(conn, practice_id, invitation_id)
            if invitation is None:
                return None  # another practice's invitation: not found, whatever the token
            await claim(conn, once, self._clock.now())
            if invitation.revoked_at:
                raise UserError("invitation_revoked", N_("This invitation was revoked. Please create a new one."))
            if invitation.total_failures >= MAX_TOTAL_FAILURES:
                raise UserError(
                    "invitation_exhausted",
                    N_("Too many wrong TANs were entered for this invitation. Please create a new one."),
                )
            link, tan = secrets.token_urlsafe(32), new_tan()
            now = self._clock.now()
            # One bound to a consultation stays valid as long as it was (its end plus grace);
            # one that has run out (an instant consultation's guest who never came) gets the
            # lifetime of an invitation without a planned time again.
            keep = invitation.consultation_id is not None and invitation.expires_at > now
            await store.reissue(
                conn, invitation_id, link_hash=hash_token(link), tan_hmac=self._tan_hmac(tan),
                expires_at=invitation.expires_at if keep else now + self.lifetime,
            )
            await delete_sessions_of_invitation(conn, invitation_id)
            invitation = await store.invitation_of(conn, practice_id, invitation_id)
            assert invitation is not None
            tan_in_mail = await self._send(conn, invitation, link, tan)
            await self._audit.record(conn, practice_id, actor, "invitation_reissued", "invitation", invitation_id)
            await settle(conn, once, "invitation", invitation_id)
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

    async def welcome(self, invitation_id: int) -> GuestWelcome | None:
        """What the guest's page shows: who invited them, from where, until when."""
        async with self._engine.connect() as conn:
            invitation = await store.invitation_by_id(conn, invitation_id)
            if invitation is None:
                return None
            clinician, practice = await store.inviter_and_practice(conn, invitation)
        return GuestWelcome(self._view(invitation), practice, clinician)
