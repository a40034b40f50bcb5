"""A practice signs itself up: the practice, its kind and address, and its first admin.

The founder says whether they treat patients themselves: one who does (the doctor of a
one-doctor practice) is clinician and admin at once and takes the practice's first seat;
one who does not (a practice manager) only administers.

Nothing works until the admin confirms their address by the mailed link: until then the
admin cannot log in and the practice's registration link stays closed. The form answers
the same for an address that already has an account (its owner gets a mail instead), so
sign-up cannot be used to find out who has one (ASVS 6.3.8).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

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
from smartpractice.practices.plans import Plans
from smartpractice.practices.practices import slugify
from smartpractice.storage import practices as practice_store
from smartpractice.storage import users as user_store
from smartpractice.submissions import Once, claim, settle

CLIENT_POLICY = ThrottlePolicy(max_attempts=5, window=timedelta(hours=1), lockout=timedelta(hours=1))


@dataclass(frozen=True)
class PracticeApplication:
    """The sign-up form as typed."""

    practice_name: str
    kind: str
    address: str
    contact: str
    admin_name: str
    username: str
    email: str
    password: str
    password_repeat: str
    consent: bool
    language: str
    # None: not answered; the form asks again.
    treats_patients: bool | None = None


class Signups:
    def __init__(
        self, *, engine: AsyncEngine, clock: Clock, passwords: Passwords, confirmations: Confirmations,
        outbox: Outbox, throttle: LoginThrottle, links, audit: Audit, plans: Plans,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._passwords = passwords
        self._confirmations = confirmations
        self._outbox = outbox
        self._throttle = throttle
        self._links = links
        self._audit = audit
        self._plans = plans

    def _check(self, application: PracticeApplication) -> None:
        name = tidy(application.practice_name)
        if not name or len(name) > 200:
            raise UserError("practice_name_invalid", N_("Please enter a practice name of at most 200 characters."))
        plan = self._plans.plan(application.kind)
        if plan is None:
            raise UserError("kind_invalid", N_("Please choose a kind of practice from the price table."))
        if not application.address.strip() or len(application.address) > 500:
            raise UserError("address_invalid", N_("Please enter the practice's address."))
        if not application.contact.strip() or len(application.contact) > 254:
            raise UserError("contact_missing", N_("Please enter a phone number or email address patients can reach the practice at."))
        validate_identity(application.username.strip(), application.email.strip(), application.admin_name)
        if application.treats_patients is None:
            raise UserError("treats_patients_missing", N_("Please say whether you treat patients yourself."))
        if application.password != application.password_repeat:
            raise UserError("password_mismatch", N_("The two passwords are not the same."))
        check_password(
            application.password, staff=True,
            context=(application.username, application.email, application.admin_name, name),
        )
        if not application.consent:
            raise UserError("terms_missing", N_("Please agree to the terms of use to sign up."))

    async def sign_up(self, application: PracticeApplication, *, address: str, once: Once | None = None) -> None:
        """The form's `once` token makes a second sending raise AlreadySubmitted, whatever the
        first did: one practice, one mail, and the same answer about a known address."""
        self._check(application)
        now = self._clock.now()
        async with self._engine.begin() as conn:
            limits = [(self._throttle.address_key(address) + ":signup", CLIENT_POLICY)]
            if await self._throttle.admit(conn, limits, now) is not None:
                raise UserError("signup_throttled", N_("Too many sign-ups from your connection. Please try again in an hour."))
        password_hash = await self._passwords.hash(application.password)
        name, email, username = tidy(application.practice_name), application.email.strip(), application.username.strip()
        plan = self._plans.plan(application.kind)
        assert plan is not None
        try:
            async with self._engine.begin() as conn:
                await claim(conn, once, now)
                await settle(conn, once, "signup", 0)
                taken = await user_store.taken(conn, username=username, email=email)
                if "username" in taken:
                    raise UserError("username_taken", N_("This user name is already taken."))
                if "email" in taken:
                    await self._notify_owner(conn, email, name)
                    return
                slug = base = slugify(name)
                counter = 1
                while await practice_store.slug_exists(conn, slug):
                    counter += 1
                    slug = f"{base}-{counter}"
                practice = await practice_store.insert_practice(
                    conn, slug=slug, name=name, now=now, confirmed=False, kind=plan.kind,
                    address=application.address.strip(), contact=application.contact.strip(),
                    # A founder who treats patients takes a seat; a plan includes at least one.
                    seats=max(plan.included_seats, 1 if application.treats_patients else 0),
                )
                user_id = await user_store.insert_user(
                    conn, username=username, email=email, display_name=tidy(application.admin_name),
                    password_hash=password_hash, must_change_password=False, initial_password_expires_at=None,
                    email_confirmed_at=None, language=application.language if application.language in LANGUAGES else None,
                    now=now,
                )
                await practice_store.add_member(conn, practice_id=practice.id, user_id=user_id, role="admin", now=now,
                                                treats_patients=application.treats_patients)
                user = await user_store.user_by_id(conn, user_id)
                assert user is not None
                await self._confirmations.send(conn, user, practice, created_by_practice=False, kind="confirm_practice")
                await self._audit.record(conn, practice.id, user_id, "practice_signed_up", "practice", practice.id)
        except IntegrityError:
            raise UserError("account_conflict", N_("The account could not be created. Please try again.")) from None

    async def _notify_owner(self, conn, email: str, practice_name: str) -> None:
        owner = await user_store.user_by_login(conn, email)
        assert owner is not None
        await self._outbox.enqueue(
            conn, kind="account_exists", to=owner.email, language=owner.mail_language,
            context={"name": owner.display_name, "practice": practice_name, "username": owner.username,
                     "link": self._links.url("password_reset")},
        )
