"""Creating accounts and changing passwords."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smartpractice.accounts.passwords import Passwords, check_password, generate_password
from smartpractice.accounts.sessions import Sessions
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.mail.outbox import Outbox
from smartpractice.names import tidy
from smartpractice.storage import practices as practice_store
from smartpractice.storage import users as store
from smartpractice.storage.tables import STAFF_ROLES
from smartpractice.storage.users import User

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")
# Deliberately loose (RFC 5321 sizes, one @, a dot in the domain): the confirmation
# mail is the real test of an address.
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def validate_identity(username: str, email: str, display_name: str) -> None:
    if not USERNAME.match(username):
        raise UserError(
            "username_invalid",
            N_("A user name has 3 to 64 letters, digits, dots, dashes or underscores."),
        )
    if len(email) > 254 or not EMAIL.match(email):
        raise UserError("email_invalid", N_("Please enter a valid email address."))
    if not display_name.strip() or len(display_name) > 200:
        raise UserError("display_name_invalid", N_("Please enter a name of at most 200 characters."))


class Users:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        clock: Clock,
        passwords: Passwords,
        sessions: Sessions,
        initial_password_lifetime: timedelta,
        outbox: Outbox,
        links,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._passwords = passwords
        self._sessions = sessions
        self._initial_lifetime = initial_password_lifetime
        self._outbox = outbox
        self._links = links

    async def by_login(self, identifier: str) -> User | None:
        """The user with this user name or email address (any case), if there is one."""
        async with self._engine.connect() as conn:
            return await store.user_by_login(conn, identifier)

    async def create_with_initial_password(
        self,
        conn: AsyncConnection,
        *,
        username: str,
        email: str,
        display_name: str,
        password: str,
        staff: bool,
        context: tuple[str, ...] = (),
        language: str | None = None,
        email_confirmed: bool = True,
    ) -> int:
        """A user who must choose their own password at first login.

        Operator-made accounts count as confirmed; patients made by a practice confirm
        their address by mail (`email_confirmed=False`) before they can log in.
        """
        validate_identity(username, email, display_name)
        check_password(password, staff=staff, context=(username, email, display_name, *context))
        taken = await store.taken(conn, username=username, email=email)
        if "username" in taken:
            raise UserError("username_taken", N_("This user name is already taken."))
        if "email" in taken:
            raise UserError("email_taken", N_("An account with this email address already exists."))
        now = self._clock.now()
        return await store.insert_user(
            conn,
            username=username,
            email=email,
            display_name=tidy(display_name),
            password_hash=await self._passwords.hash(password),
            must_change_password=True,
            initial_password_expires_at=now + self._initial_lifetime,
            email_confirmed_at=now if email_confirmed else None,
            language=language,
            now=now,
        )

    async def check_new_password(self, user: User, new_password: str) -> None:
        """The policy for this user: staff or patient length, their names and practices."""
        async with self._engine.connect() as conn:
            memberships = await practice_store.memberships_of(conn, user.id)
        staff = any(m.role in STAFF_ROLES for m in memberships)
        context = (user.username, user.email, user.display_name, *(m.practice.name for m in memberships))
        check_password(new_password, staff=staff, context=context)

    async def change_password(self, user: User, new_password: str, *, keep_session: int) -> None:
        """Set a new password, end every other session (ASVS 7.4.3) and tell the owner by
        mail (BSI TR-03161), unless they are replacing the practice's initial password."""
        await self.check_new_password(user, new_password)
        if user.password_hash and await self._passwords.verify(user.password_hash, new_password):
            raise UserError("password_unchanged", N_("The new password must differ from the current one."))
        new_hash = await self._passwords.hash(new_password)
        async with self._engine.begin() as conn:
            await store.set_password(conn, user.id, new_hash, now=self._clock.now())
            if not user.must_change_password:
                await self.notify_password_changed(conn, user)
        await self._sessions.end_all(user.id, keep=keep_session)

    async def notify_password_changed(self, conn: AsyncConnection, user: User) -> None:
        await self._outbox.enqueue(
            conn,
            kind="password_changed",
            to=user.email,
            language=user.mail_language,
            context={"name": user.display_name, "link": self._links.url("password_reset")},
        )

    async def issue_initial_password(self, user_id: int) -> str:
        """Replace the password with a generated initial one and end all sessions."""
        password, hashed = await self.new_initial_password()
        async with self._engine.begin() as conn:
            await self.store_initial_password(conn, user_id, hashed)
        await self._sessions.end_all(user_id)
        return password

    async def new_initial_password(self) -> tuple[str, str]:
        """A generated password and its hash, made before a transaction so that none waits on it."""
        password = generate_password()
        return password, await self._passwords.hash(password)

    async def store_initial_password(self, conn: AsyncConnection, user_id: int, hashed: str) -> None:
        """In the caller's transaction; the caller ends the user's sessions after it commits."""
        now = self._clock.now()
        await store.set_password(conn, user_id, hashed, now=now, initial_expires_at=now + self._initial_lifetime)

    async def end_sessions(self, user_id: int) -> None:
        await self._sessions.end_all(user_id)

    async def set_language(self, user_id: int, language: str) -> None:
        async with self._engine.begin() as conn:
            await store.set_language(conn, user_id, language)
