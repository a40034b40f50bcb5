"""What a TAN guest does with their invitation: open its page, enter the TAN (by the mailed
link, or with the invitation's code on the login page), and ask for a new TAN when theirs
was used on another device or in a session that has since ended.

Every TAN entry is counted per client address before it is checked (the password login's
limit). Five wrong TANs void the TAN in use, not the invitation: anyone who knows the code
can type wrong TANs, and the guest must still get in. A new TAN goes only to the invited
address, at most three times an hour, and the one before stops working. The invitation's
count of wrong TANs is never reset: at fifteen (three TANs' worth) it is locked, and the
practice makes a new one. Opening the page uses nothing up: only a right TAN does.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smartpractice.accounts.sessions import Sessions
from smartpractice.accounts.throttle import (
    ADDRESS_POLICY,
    LoginThrottle,
    ThrottlePolicy,
    minutes_left,
)
from smartpractice.accounts.tokens import LinkInvalid, hash_token
from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import N_, NP_
from smartpractice.links import Links
from smartpractice.mail.outbox import Outbox
from smartpractice.onboarding.invitations import (
    MAX_TAN_FAILURES,
    MAX_TOTAL_FAILURES,
    GuestWelcome,
    view_of,
)
from smartpractice.onboarding.tans import (
    CODE_LENGTH,
    TanHasher,
    new_tan,
    normalize_code,
    normalize_tan,
    show_code,
)
from smartpractice.storage import invitations as store
from smartpractice.storage.consultations import Consultation, consultation_by_id, policy_of
from smartpractice.storage.invitations import Invitation
from smartpractice.storage.tables import ConsultationState
from smartpractice.submissions import Once, claim, settle
from smartpractice.times import spoken

NEW_TAN_POLICY = ThrottlePolicy(max_attempts=3, window=timedelta(hours=1), lockout=timedelta(hours=1))
NEW_TAN_ADDRESS_POLICY = ThrottlePolicy(max_attempts=10, window=timedelta(hours=1), lockout=timedelta(hours=1))


@dataclass(frozen=True)
class InvitationRef:
    """How a guest names their invitation: the mailed link's token, the code printed in the
    mail (login page), or the id a signed cookie kept after their session lapsed."""

    link: str | None = None
    code: str | None = None
    invitation_id: int | None = None


@dataclass(frozen=True)
class InvitationPage:
    welcome: GuestWelcome
    contact: str
    zone: str
    starts_at: datetime | None  # the consultation's start, if that is still ahead
    opens_at: datetime | None  # when its waiting room opens, if that is still ahead
    tan_by_mail: bool  # a new TAN can be mailed to the invited address
    masked_email: str

    @property
    def state(self) -> str:
        return self.welcome.invitation.state


@dataclass(frozen=True)
class GuestEntry:
    token: str
    invitation_id: int
    consultation_id: int | None
    expires_at: datetime


@dataclass(frozen=True)
class _Found:
    invitation: Invitation
    practice: str
    clinician: str | None
    contact: str
    zone: str
    join_window: int
    tan_by_mail: bool
    consultation: Consultation | None


def mask(email: str) -> str:
    """`g…@example.org`: enough to know which mailbox to look in."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}…@{domain}"


class GuestAccess:
    def __init__(
        self, *, engine: AsyncEngine, clock: Clock, outbox: Outbox, links: Links, sessions: Sessions,
        throttle: LoginThrottle, audit: Audit, tan_hmac: TanHasher,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._outbox = outbox
        self._links = links
        self._sessions = sessions
        self._throttle = throttle
        self._audit = audit
        self._tan_hmac = tan_hmac

    async def page(self, ref: InvitationRef, *, language: str) -> InvitationPage:
        """What the invitation's page shows; a UserError saying why when it cannot be used."""
        async with self._engine.connect() as conn:
            found = await self._find(conn, ref, language)
        return self._page(found)

    async def consultation_of(self, invitation_id: int) -> int | None:
        async with self._engine.connect() as conn:
            invitation = await store.invitation_by_id(conn, invitation_id)
        return None if invitation is None else invitation.consultation_id

    async def log_in(self, ref: InvitationRef, tan: str, *, address: str, user_agent: str,
                     language: str) -> GuestEntry:
        """Check the TAN against this invitation only; a guest session when it is right."""
        if not normalize_tan(tan):
            raise UserError("tan_missing", N_("Please enter the TAN from your invitation mail."))
        if ref.code is not None and not normalize_code(ref.code):
            raise UserError("code_missing", N_("Please enter the invitation code from your mail."))
        now = self._clock.now()
        address_key = self._throttle.address_key(address)
        async with self._engine.begin() as conn:
            locked_until = await self._throttle.admit(conn, [(address_key, ADDRESS_POLICY)], now)
        if locked_until is not None:
            raise UserError("tan_throttled", N_("Too many attempts from your connection. Please try again in %(minutes)d min."),
                            minutes=minutes_left(locked_until, now))
        typed = self._tan_hmac(tan)
        async with self._engine.begin() as conn:
            found = await self._find(conn, ref, language)
            invitation = found.invitation
            if invitation.tan_failures >= MAX_TAN_FAILURES and invitation.tan_used_at is None:
                # Voided by wrong tries: not even the right one works, and the invitation counts
                # no failure for it (the address's try above stays counted, as for any TAN).
                raise self._voided(found, ref)
            if hmac.compare_digest(invitation.tan_hmac, typed) and invitation.tan_used_at is None:
                if not await store.use_tan(conn, invitation.id, now, max_failures=MAX_TAN_FAILURES):
                    raise self._used()
                await self._throttle.give_back(conn, address_key)
                token = await self._sessions.start_guest(conn, invitation.id, user_agent,
                                                         expires_at=invitation.expires_at)
                await self._audit.record(conn, invitation.practice_id, None, "guest_login", "invitation", invitation.id)
                return GuestEntry(token, invitation.id, invitation.consultation_id, invitation.expires_at)
            wrong = await self._wrong(conn, found, ref, typed, address_key)
        raise wrong  # after the block, so that the failure it counted is kept

    async def _wrong(self, conn: AsyncConnection, found: _Found, ref: InvitationRef, typed: str,
                     address_key: str) -> UserError:
        invitation = found.invitation
        if hmac.compare_digest(invitation.tan_hmac, typed):
            # The right TAN, spent: whoever types it had the mail, so it is no guess.
            await self._throttle.give_back(conn, address_key)
            return self._used()
        if invitation.previous_tan_hmac and hmac.compare_digest(invitation.previous_tan_hmac, typed):
            await self._throttle.give_back(conn, address_key)
            return UserError("tan_replaced", N_("This TAN was replaced by a newer one. Please use the TAN from the most recent mail."))
        failures, total = await store.count_tan_failure(conn, invitation.id, self._clock.now(),
                                                        max_total=MAX_TOTAL_FAILURES)
        if total >= MAX_TOTAL_FAILURES:
            # A new TAN gives five tries of its own, but the invitation's count goes on (NIST:
            # a new code does not reset it): three TANs' worth of guesses, then the practice.
            if total == MAX_TOTAL_FAILURES:
                await self._audit.record(conn, invitation.practice_id, None, "invitation_locked", "invitation",
                                         invitation.id)
            return self._locked(found)
        left = MAX_TAN_FAILURES - failures
        if left <= 0:
            if left == 0:  # parallel wrong tries past the fifth void it once
                await self._audit.record(conn, invitation.practice_id, None, "invitation_tan_voided", "invitation",
                                         invitation.id)
            return self._voided(found, ref)
        return UserError("tan_wrong", NP_("This TAN is not correct. %(left)d more try is left.",
                                          "This TAN is not correct. %(left)d more tries are left."),
                         number="left", left=left)

    async def send_new_tan(self, ref: InvitationRef, *, address: str, language: str, form_token: str) -> InvitationPage:
        """A new TAN by mail to the invited address; the one before stops working. The
        page's one-time `form_token` makes a double click or a reload send one mail: the
        later sendings raise AlreadySubmitted."""
        now = self._clock.now()
        async with self._engine.connect() as conn:
            found = await self._find(conn, ref, language)
        invitation = found.invitation
        if not found.tan_by_mail:
            raise UserError(
                "tan_from_practice",
                N_("%(practice)s gives out the TANs for its invitations itself. Please ask the practice for a new one."),
                practice=found.practice, contact=found.contact,
            )
        limits = [(f"new-tan:{invitation.id}", NEW_TAN_POLICY),
                  ("new-tan-" + self._throttle.address_key(address), NEW_TAN_ADDRESS_POLICY)]
        once = Once(f"invitation-{invitation.id}", form_token)
        tan = new_tan()
        async with self._engine.begin() as conn:
            # The token first: a second click neither counts against the limit nor sends.
            await claim(conn, once, now)
            locked_until = await self._throttle.admit(conn, limits, now)
            if locked_until is not None:
                raise UserError(
                    "new_tan_throttled",
                    N_("New TANs have already been sent several times within the hour. Please look in your mailbox, "
                       "including its spam folder, or ask again in %(minutes)d min."),
                    minutes=minutes_left(locked_until, now),
                )
            if not await store.replace_tan(conn, invitation.id, self._tan_hmac(tan)):
                raise self._locked(found)
            renewed = await store.invitation_by_id(conn, invitation.id)
            assert renewed is not None
            found = _Found(renewed, found.practice, found.clinician, found.contact, found.zone,
                           found.join_window, found.tan_by_mail, found.consultation)
            await self._mail_tan(conn, found, tan)
            await self._audit.record(conn, invitation.practice_id, None, "invitation_tan_sent", "invitation", invitation.id)
            await settle(conn, once, "invitation_tan", invitation.id)
        return self._page(found)

    async def _mail_tan(self, conn: AsyncConnection, found: _Found, tan: str) -> None:
        invitation, language = found.invitation, found.invitation.language
        start = found.consultation.starts_at if found.consultation else None
        await self._outbox.enqueue(
            conn, kind="invitation_tan", to=invitation.email, language=language,
            context={
                "name": invitation.display_name,
                "practice": found.practice,
                "tan": tan,
                "code": show_code(invitation.code) if invitation.code else None,
                "login": self._links.url("login"),
                "when": spoken(start, found.zone, language) if start and start > self._clock.now() else None,
                "valid_until": spoken(invitation.expires_at, found.zone, language),
            },
        )

    async def _find(self, conn: AsyncConnection, ref: InvitationRef, language: str) -> _Found:
        invitation = await self._lookup(conn, ref)
        clinician, practice = await store.inviter_and_practice(conn, invitation)
        contact = await store.practice_contact(conn, invitation.practice_id)
        policy = await policy_of(conn, invitation.practice_id)
        consultation = (await consultation_by_id(conn, invitation.consultation_id)
                        if invitation.consultation_id is not None else None)
        found = _Found(invitation, practice, clinician, contact, policy.time_zone, policy.join_window_minutes,
                       await store.tan_delivery_of(conn, invitation.practice_id) == "mail", consultation)
        self._check_open(found, language)
        return found

    async def _lookup(self, conn: AsyncConnection, ref: InvitationRef) -> Invitation:
        not_valid = LinkInvalid("link_invalid", N_("This link is not valid. Please check that you copied it completely."))
        if ref.link is not None:
            if len(ref.link) > 100:
                raise not_valid
            link_hash = hash_token(ref.link)
            invitation = await store.invitation_by_link(conn, link_hash)
            if invitation is None:
                replaced = await store.invitation_by_previous_link(conn, link_hash)
                if replaced is None:
                    raise not_valid
                _, practice = await store.inviter_and_practice(conn, replaced)
                raise LinkInvalid(
                    "link_replaced",
                    N_("%(practice)s has sent you a newer invitation mail, which replaces this link. Please use the link in the most recent mail."),
                    practice=practice,
                )
            return invitation
        if ref.code is not None:
            code = normalize_code(ref.code)
            invitation = await store.invitation_by_code(conn, code) if len(code) == CODE_LENGTH else None
            if invitation is None:
                raise UserError("code_unknown", N_("No invitation has this code. Please check the invitation code in your mail."))
            return invitation
        invitation = await store.invitation_by_id(conn, ref.invitation_id or 0)
        if invitation is None:
            raise LinkInvalid("invitation_gone", N_("This invitation no longer exists. Please ask your practice for a new one."))
        return invitation

    def _check_open(self, found: _Found, language: str) -> None:
        """Withdrawn, locked, expired, or its consultation over: say which, and when."""
        invitation, practice, contact = found.invitation, found.practice, found.contact
        if invitation.revoked_at:
            raise LinkInvalid("invitation_revoked", N_("%(practice)s has withdrawn this invitation."),
                              practice=practice, contact=contact)
        if invitation.locked_at:
            raise self._locked(found)
        if found.consultation is not None and found.consultation.state == ConsultationState.CANCELLED:
            raise LinkInvalid("consultation_cancelled", N_("This consultation was cancelled by the practice."),
                              contact=contact)
        if found.consultation is not None and found.consultation.state == ConsultationState.ENDED:
            raise LinkInvalid("consultation_ended", N_("This consultation has ended."), contact=contact)
        if invitation.expires_at <= self._clock.now():
            raise LinkInvalid(
                "invitation_expired", N_("This invitation expired on %(when)s. Please ask %(practice)s for a new one."),
                practice=practice, contact=contact, when=spoken(invitation.expires_at, found.zone, language),
            )

    @staticmethod
    def _locked(found: _Found) -> LinkInvalid:
        return LinkInvalid(
            "invitation_locked",
            N_("Too many wrong TANs were entered, so this invitation is locked. Please ask %(practice)s to send it again."),
            practice=found.practice, contact=found.contact,
        )

    @staticmethod
    def _voided(found: _Found, ref: InvitationRef) -> UserError:
        if found.tan_by_mail and ref.code is not None:
            # The login page has no button for a new code; the mail's link leads to one.
            return UserError(
                "tan_voided",
                N_("Five wrong TANs were entered, so this TAN no longer works. Please open the link in your "
                   "invitation mail: there you can have a new TAN sent to %(email)s."),
                email=mask(found.invitation.email), contact=found.contact,
            )
        if found.tan_by_mail:
            return UserError(
                "tan_voided",
                N_("Five wrong TANs were entered, so this TAN no longer works. Please have a new TAN sent to "
                   "%(email)s with the button below and enter that one."),
                email=mask(found.invitation.email), contact=found.contact,
            )
        return UserError(
            "tan_voided",
            N_("Five wrong TANs were entered, so this TAN no longer works. Please ask %(practice)s for a new one."),
            practice=found.practice, contact=found.contact,
        )

    @staticmethod
    def _used() -> UserError:
        return UserError("tan_used", N_("This TAN has already been used: each TAN works only once. You can have a new one sent to you below."))

    def _page(self, found: _Found) -> InvitationPage:
        now = self._clock.now()
        starts_at = found.consultation.starts_at if found.consultation else None
        opens = starts_at - timedelta(minutes=found.join_window) if starts_at else None
        return InvitationPage(
            welcome=GuestWelcome(view_of(found.invitation, now), found.practice, found.clinician),
            contact=found.contact, zone=found.zone, starts_at=starts_at if starts_at and starts_at > now else None,
            opens_at=opens if opens and opens > now else None,
            tan_by_mail=found.tan_by_mail, masked_email=mask(found.invitation.email),
        )
