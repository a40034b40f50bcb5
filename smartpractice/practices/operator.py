"""The site's operator: made by the CLI, sees every practice, suspends and sets plans,
and is told by the health check whether the service can work."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.accounts.passwords import generate_password
from smartpractice.accounts.users import Users
from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.storage import login_sessions as session_store
from smartpractice.storage import practice_settings as settings_store
from smartpractice.storage import practices as practice_store
from smartpractice.storage import staff as staff_store
from smartpractice.storage import users as user_store
from smartpractice.storage.engine import ping
from smartpractice.storage.practice_settings import PracticeOverview


@dataclass(frozen=True)
class NewOperator:
    username: str
    password: str


class Operator:
    def __init__(self, *, engine: AsyncEngine, clock: Clock, users: Users, audit: Audit) -> None:
        self._engine = engine
        self._clock = clock
        self._users = users
        self._audit = audit

    async def database_ready(self) -> bool:
        return await ping(self._engine)

    async def create(self, *, email: str, username: str, name: str | None = None) -> NewOperator:
        """An operator account with a generated initial password; the second factor is set up at first login."""
        password = generate_password()
        async with self._engine.begin() as conn:
            user_id = await self._users.create_with_initial_password(
                conn, username=username, email=email, display_name=name or username, password=password, staff=True,
            )
            await user_store.make_operator(conn, user_id)
            await self._audit.record(conn, None, None, "operator_created", "user", user_id)
        return NewOperator(username, password)

    async def practices(self) -> list[PracticeOverview]:
        async with self._engine.connect() as conn:
            return await settings_store.all_practices(conn)

    async def suspend(self, practice_id: int, *, actor: int | None) -> bool:
        """Lock the practice's staff out at once; patients see a notice instead of its pages."""
        async with self._engine.begin() as conn:
            if not await practice_store.set_suspended(conn, practice_id, self._clock.now()):
                return False
            for user_id in await staff_store.active_staff_ids(conn, practice_id):
                await session_store.delete_sessions_of(conn, user_id)
            await self._audit.record(conn, practice_id, actor, "practice_suspended", "practice", practice_id)
        return True

    async def reactivate(self, practice_id: int, *, actor: int | None) -> bool:
        async with self._engine.begin() as conn:
            if not await practice_store.set_suspended(conn, practice_id, None):
                return False
            await self._audit.record(conn, practice_id, actor, "practice_reactivated", "practice", practice_id)
        return True
