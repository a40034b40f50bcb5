"""Patients made by the practice: an account with an initial password, confirmed by mail."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.accounts.passwords import generate_password
from smartpractice.accounts.users import Users
from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import LANGUAGES, N_
from smartpractice.names import tidy
from smartpractice.onboarding.confirmations import Confirmations
from smartpractice.storage import practices as practice_store
from smartpractice.storage import users as user_store
from smartpractice.storage.practices import Practice
from smartpractice.storage.users import User
from smartpractice.submissions import Once, claim, settle


class PatientNotFound(UserError):
    status = 404


@dataclass(frozen=True)
class NewPatient:
    user_id: int
    username: str
    display_name: str
    email: str
    # Only a password the server made is shown, once; a typed one the staff member knows.
    generated_password: str | None


@dataclass(frozen=True)
class PatientView:
    user: User
    confirmed: bool
    # "pending", "expired", or "replaced" once the patient chose their own password.
    initial_state: str


class Patients:
    def __init__(
        self, *, engine: AsyncEngine, clock: Clock, users: Users, confirmations: Confirmations, audit: Audit
    ) -> None:
        self._audit = audit
        self._engine = engine
        self._clock = clock
        self._users = users
        self._confirmations = confirmations

    async def create(
        self,
        practice: Practice,
        *,
        username: str,
        email: str,
        display_name: str,
        password: str,
        language: str,
        actor: int | None = None,
        once: Once | None = None,
    ) -> NewPatient:
        """The form's `once` token makes a second sending raise AlreadySubmitted: one account, one mail."""
        username, email, display_name = username.strip(), email.strip(), tidy(display_name)
        generated = None if password else generate_password()
        language = language if language in LANGUAGES else "de"
        try:
            async with self._engine.begin() as conn:
                await claim(conn, once, self._clock.now())
                # Refuses a taken username or email: the practice never takes over an account.
                user_id = await self._users.create_with_initial_password(
                    conn,
                    username=username,
                    email=email,
                    display_name=display_name,
                    password=password or generated or "",
                    staff=False,
                    context=(practice.name,),
                    language=language,
                    email_confirmed=False,
                )
                await practice_store.add_member(
                    conn, practice_id=practice.id, user_id=user_id, role="patient", now=self._clock.now()
                )
                user = await user_store.user_by_id(conn, user_id)
                assert user is not None
                await self._confirmations.send(conn, user, practice, created_by_practice=True)
                await self._audit.record(conn, practice.id, actor, "patient_created", "user", user_id)
                await settle(conn, once, "patient", user_id)
        except IntegrityError:
            # Someone else took the name or address between the check and the insert.
            raise UserError("account_conflict", N_("The account could not be created. Please try again.")) from None
        return NewPatient(user_id, user.username, user.display_name, user.email, generated)

    async def list(self, practice: Practice) -> list[PatientView]:
        async with self._engine.connect() as conn:
            users = await user_store.patients_of(conn, practice.id)
        return [self._view(user) for user in users]

    async def find(self, practice: Practice, user_id: int) -> PatientView:
        """One of this practice's patients; PatientNotFound for anyone else."""
        async with self._engine.connect() as conn:
            user = await user_store.patient_of(conn, practice.id, user_id)
        if user is None:
            raise PatientNotFound("patient_not_found", N_("There is no such patient in this practice."))
        return self._view(user)

    async def new_initial_password(self, practice: Practice, user_id: int, *, actor: int | None = None,
                                   once: Once | None = None) -> str:
        """A generated initial password for a patient who has not chosen their own yet.

        Ends all their sessions; if the address is still unconfirmed, a fresh confirmation
        mail goes out too, since the first one has probably expired with the password.
        """
        patient = await self.find(practice, user_id)
        if patient.initial_state == "replaced":
            raise UserError(
                "password_chosen",
                N_("This patient has already chosen their own password. If they have forgotten it, "
                   "they can set a new one with “Forgotten password” on the login page."),
            )
        password, hashed = await self._users.new_initial_password()
        async with self._engine.begin() as conn:
            # The button's `once` token: a double click issues one password and one mail, and
            # does not void the password shown on the first answer.
            await claim(conn, once, self._clock.now())
            await self._users.store_initial_password(conn, user_id, hashed)
            if not patient.confirmed:
                await self._confirmations.send(conn, patient.user, practice, created_by_practice=True)
            await self._audit.record(conn, practice.id, actor, "patient_initial_password_issued", "user", user_id)
            await settle(conn, once, "patient", user_id)
        await self._users.end_sessions(user_id)
        return password

    def _view(self, user: User) -> PatientView:
        if not user.must_change_password:
            state = "replaced"
        elif user.initial_password_expires_at and user.initial_password_expires_at <= self._clock.now():
            state = "expired"
        else:
            state = "pending"
        return PatientView(user, user.email_confirmed_at is not None, state)
