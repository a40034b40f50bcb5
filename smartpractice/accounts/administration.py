"""What the operator does from the command line for a person who is locked out or wants
to go: a new initial password, a second factor reset, an unlock, a deletion. Each is
audited as a site-wide entry without an actor (the command line has no login)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.accounts.personal_data import PersonalData
from smartpractice.accounts.sessions import Sessions
from smartpractice.accounts.throttle import LoginThrottle
from smartpractice.accounts.users import Users
from smartpractice.audit import Audit
from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.storage import second_factors as factor_store
from smartpractice.storage import users as user_store
from smartpractice.storage.users import User


class UnknownUser(UserError):
    pass


class AccountAdministration:
    def __init__(self, *, engine: AsyncEngine, users: Users, sessions: Sessions, throttle: LoginThrottle,
                 audit: Audit, personal_data: PersonalData) -> None:
        self._engine = engine
        self._users = users
        self._sessions = sessions
        self._throttle = throttle
        self._audit = audit
        self._personal_data = personal_data

    async def find(self, login: str) -> User:
        async with self._engine.connect() as conn:
            user = await user_store.user_by_login(conn, login)
        if user is None:
            raise UnknownUser("unknown_user", N_("There is no user %(login)s."), login=login)
        return user

    async def _record(self, action: str, user: User) -> None:
        async with self._engine.begin() as conn:
            await self._audit.record(conn, None, None, action, "user", user.id)

    async def reset_password(self, login: str) -> tuple[User, str]:
        """A generated initial password; every session of the user ends."""
        user = await self.find(login)
        password = await self._users.issue_initial_password(user.id)
        await self._record("password_reset_by_operator", user)
        return user, password

    async def reset_second_factor(self, login: str) -> tuple[User, bool]:
        """Removes the app and recovery codes; staff set up a new app at their next login."""
        user = await self.find(login)
        async with self._engine.begin() as conn:
            removed = await factor_store.remove(conn, user.id)
        await self._sessions.end_all(user.id)
        await self._record("second_factor_reset_by_operator", user)
        return user, removed

    async def unlock(self, login: str) -> User:
        """Clears the account's login waits, also those of each address that guessed at it;
        an address's own limit across accounts runs out on its own."""
        user = await self.find(login)
        async with self._engine.begin() as conn:
            await self._throttle.forget_account(conn, self._throttle.account_key(user.id, user.username))
        await self._record("account_unlocked_by_operator", user)
        return user

    async def delete(self, login: str) -> User:
        user = await self.find(login)
        await self._personal_data.delete_account(user, actor=None, staff_too=True)
        return user
