"""Self-registration through a practice's link or QR code, without user enumeration."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.accounts.passwords import Passwords, check_password
from smartpractice.accounts.throttle import LoginThrottle, ThrottlePolicy
from smartpractice.accounts.users import validate_identity
from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import LANGUAGES, N_
from smartpractice.mail.outbox import Outbox
from smartpractice.names import tidy
from smartpractice.onboarding.confirmations import Confirmations
from smartpractice.storage import practices as practice_store
from smartpractice.storage import registration as store
from smartpractice.storage import users as user_store
from smartpractice.storage.practices import Practice
from smartpractice.storage.registration import RegistrationOptions
from smartpractice.submissions import Once, claim, settle

# Counts complete registration forms: enough for a family on one connection, too few to fill the database or someone's mailbox.
CLIENT_POLICY = ThrottlePolicy(max_attempts=10, window=timedelta(hours=1), lockout=timedelta(hours=1))
NOTICE_POLICY = ThrottlePolicy(max_attempts=3, window=timedelta(hours=1), lockout=timedelta(hours=1))
CODE_BYTES = 12
EARLIEST_BIRTH = date(1900, 1, 1)


class RegistrationClosed(UserError):
    status = 404


@dataclass(frozen=True)
class OpenRegistration:
    practice: Practice
    ask_date_of_birth: bool


@dataclass(frozen=True)
class Applicant:
    """What the registration form sent, as typed."""

    display_name: str
    email: str
    username: str
    password: str
    password_repeat: str
    date_of_birth: str
    consent: bool
    language: str


LINK_CODE = re.compile(r"[A-Za-z0-9_-]{1,32}")


def new_code() -> str:
    return secrets.token_urlsafe(CODE_BYTES)


class Registrations:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        clock: Clock,
        passwords: Passwords,
        confirmations: Confirmations,
        outbox: Outbox,
        throttle: LoginThrottle,
        links,
        audit: Audit,
    ) -> None:
        self._audit = audit
        self._engine = engine
        self._clock = clock
        self._passwords = passwords
        self._confirmations = confirmations
        self._outbox = outbox
        self._throttle = throttle
        self._links = links

    async def options(self, practice: Practice) -> RegistrationOptions:
        """The practice's settings; its link code is made the first time anyone looks."""
        async with self._engine.begin() as conn:
            options = await store.options_of(conn, practice.id)
            if options.code is None:
                await store.set_code(conn, practice.id, new_code(), only_if_missing=True)
                options = await store.options_of(conn, practice.id)
        return options

    async def configure(self, practice: Practice, *, enabled: bool, ask_date_of_birth: bool, actor: int) -> None:
        async with self._engine.begin() as conn:
            await store.set_options(conn, practice.id, enabled=enabled, ask_date_of_birth=ask_date_of_birth)
            await self._audit.record(conn, practice.id, actor, "settings_changed", "practice", practice.id)

    async def renew(self, practice: Practice, *, actor: int) -> None:
        """A new link; the old one, on posters and in QR codes, stops working at once."""
        async with self._engine.begin() as conn:
            await store.set_code(conn, practice.id, new_code())
            await self._audit.record(conn, practice.id, actor, "registration_link_renewed", "practice", practice.id)

    async def open(self, code: str) -> OpenRegistration:
        async with self._engine.connect() as conn:
            # Only what new_code() makes is looked up: a NUL, for one, is no text to PostgreSQL.
            found = await store.practice_by_code(conn, code) if LINK_CODE.fullmatch(code) else None
        # A practice not (yet or any more) at work takes no new patients.
        if found is None or not found[1].enabled or not found[0].confirmed or found[0].suspended:
            raise RegistrationClosed("registration_closed", N_("This registration link is no longer valid."))
        return OpenRegistration(found[0], found[1].ask_date_of_birth)

    async def register(self, code: str, applicant: Applicant, *, address: str, once: Once | None = None) -> None:
        """Create an unconfirmed patient and mail the link; for a known address, mail its owner.

        The caller shows the same page in both cases (ASVS 6.3.8). The form's `once` token
        makes a second sending raise AlreadySubmitted: a reload or a double click makes one
        account and sends one mail, and does not come back as "user name taken".
        """
        opened = await self.open(code)
        practice = opened.practice
        display_name, email, username = (
            tidy(applicant.display_name), applicant.email.strip(), applicant.username.strip()
        )
        validate_identity(username, email, display_name)
        born = self._date_of_birth(applicant.date_of_birth) if opened.ask_date_of_birth else None
        if applicant.password != applicant.password_repeat:
            raise UserError("password_mismatch", N_("The two passwords are not the same."))
        check_password(applicant.password, staff=False, context=(display_name, username, email, practice.name))
        if not applicant.consent:
            raise UserError("consent_missing", N_("Please agree to the privacy terms to register."))
        now = self._clock.now()
        # Counted once the form is complete and before the costly hash.
        async with self._engine.begin() as conn:
            limits = [(self._throttle.address_key(address) + ":register", CLIENT_POLICY)]
            refused = await self._throttle.admit(conn, limits, now)
        if refused is not None:
            raise UserError(
                "registration_throttled",
                N_("Too many registrations from your connection. Please try again in an hour."),
            )
        # Hashed on both paths, so a known address answers as slowly as a new one.
        password_hash = await self._passwords.hash(applicant.password)
        language = applicant.language if applicant.language in LANGUAGES else "de"
        try:
            async with self._engine.begin() as conn:
                await claim(conn, once, now)
                taken = await user_store.taken(conn, username=username, email=email)
                if "username" in taken:
                    # Raised inside: the claim is rolled back, the form may be sent again with another name.
                    raise UserError("username_taken", N_("This user name is already taken."))
                if "email" in taken:
                    await self._notify_owner(conn, email, practice, language)
                    await settle(conn, once, "registration", 0)
                else:
                    user_id = await user_store.insert_user(
                        conn,
                        username=username,
                        email=email,
                        display_name=display_name,
                        password_hash=password_hash,
                        must_change_password=False,
                        initial_password_expires_at=None,
                        email_confirmed_at=None,
                        language=language,
                        now=now,
                    )
                    if born is not None:
                        await user_store.set_date_of_birth(conn, user_id, born)
                    await practice_store.add_member(
                        conn, practice_id=practice.id, user_id=user_id, role="patient", now=now
                    )
                    user = await user_store.user_by_id(conn, user_id)
                    assert user is not None
                    await self._confirmations.send(conn, user, practice, created_by_practice=False)
                    await settle(conn, once, "registration", user_id)
        except IntegrityError:
            # A parallel registration took the name or address between check and insert.
            raise UserError(
                "registration_conflict", N_("Your registration could not be completed. Please try again.")
            ) from None

    async def _notify_owner(self, conn, email: str, practice: Practice, language: str) -> None:
        """Tell the owner of an address someone tried to register with it; no membership is added."""
        owner = await user_store.user_by_login(conn, email)
        assert owner is not None
        notice_key = "register:" + self._throttle.account_key(owner.id, owner.username)
        now = self._clock.now()
        if await self._throttle.admit(conn, [(notice_key, NOTICE_POLICY)], now) is not None:
            return
        await self._outbox.enqueue(
            conn,
            kind="account_exists",
            to=owner.email,
            # Whoever tried is most likely the owner: the form's language fills in.
            language=owner.language or language,
            context={
                "name": owner.display_name,
                "practice": practice.name,
                "username": owner.username,
                "link": self._links.url("password_reset"),
            },
        )

    def _date_of_birth(self, typed: str) -> date:
        try:
            born = date.fromisoformat(typed.strip())
        except ValueError:
            born = None
        if born is None or not EARLIEST_BIRTH <= born <= self._clock.now().date():
            raise UserError("date_of_birth_invalid", N_("Please enter your date of birth as a valid date."))
        return born
