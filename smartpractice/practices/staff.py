"""A practice's staff: roles, deactivation and reactivation, and the last admin's guard."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.practices.plans import Plans
from smartpractice.storage import staff as store
from smartpractice.storage.staff import StaffMember

ROLES = ("admin", "clinician")


class StaffMemberNotFound(UserError):
    status = 404


def _last_admin() -> UserError:
    return UserError(
        "last_admin",
        N_("A practice needs at least one active admin. Make someone else an admin first."),
    )


class Staff:
    def __init__(self, *, engine: AsyncEngine, clock: Clock, audit: Audit, plans: Plans) -> None:
        self._engine = engine
        self._clock = clock
        self._audit = audit
        self._plans = plans

    async def list(self, practice_id: int) -> list[StaffMember]:
        async with self._engine.connect() as conn:
            return await store.staff_of(conn, practice_id)

    async def _member(self, conn: AsyncConnection, practice_id: int, user_id: int) -> StaffMember:
        member = await store.staff_member(conn, practice_id, user_id)
        if member is None:
            raise StaffMemberNotFound("staff_not_found", N_("There is no such staff member in this practice."))
        return member

    async def _keep_an_admin(self, conn: AsyncConnection, practice_id: int, member: StaffMember) -> None:
        if member.role == "admin" and member.active and await store.count_active(conn, practice_id, "admin") <= 1:
            raise _last_admin()

    async def change_role(self, practice_id: int, user_id: int, role: str, *, actor: int) -> None:
        if role not in ROLES:
            raise UserError("role_invalid", N_("Please choose a role."))
        async with self._engine.begin() as conn:
            member = await self._member(conn, practice_id, user_id)
            if member.role == role:
                return
            if role != "admin":
                await self._keep_an_admin(conn, practice_id, member)
            if role == "clinician" and member.active:
                await self._plans.require_free_seat(conn, practice_id)
            await store.set_role(conn, practice_id, user_id, role)
            await self._audit.record(conn, practice_id, actor, "role_changed", "user", user_id)

    async def deactivate(self, practice_id: int, user_id: int, *, actor: int) -> None:
        """The member reaches nothing of the practice from their next request on."""
        async with self._engine.begin() as conn:
            member = await self._member(conn, practice_id, user_id)
            if not member.active:
                return
            await self._keep_an_admin(conn, practice_id, member)
            await store.set_deactivated(conn, practice_id, user_id, self._clock.now())
            await self._audit.record(conn, practice_id, actor, "member_deactivated", "user", user_id)

    async def reactivate(self, practice_id: int, user_id: int, *, actor: int) -> None:
        async with self._engine.begin() as conn:
            member = await self._member(conn, practice_id, user_id)
            if member.active:
                return
            if member.role == "clinician":
                await self._plans.require_free_seat(conn, practice_id)
            await store.set_deactivated(conn, practice_id, user_id, None)
            await self._audit.record(conn, practice_id, actor, "member_reactivated", "user", user_id)
