"""A practice's staff: roles, deactivation and reactivation, and the last admin's guard."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.practices.plans import Plans
from smartpractice.storage import personal_data as personal_store
from smartpractice.storage import staff as store
from smartpractice.storage import users as user_store
from smartpractice.storage.staff import StaffMember
from smartpractice.storage.users import User

# The staff page's choices: the role, and whether the member treats patients (and so
# holds consultations and takes a seat). A clinician always does.
ROLE_CHOICES = {"clinician": ("clinician", True), "admin": ("admin", False), "admin_clinician": ("admin", True)}


def role_choice(member: StaffMember) -> str:
    """The staff page's choice a member holds now."""
    if member.role == "admin":
        return "admin_clinician" if member.treats_patients else "admin"
    return "clinician"


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

    async def account(self, practice_id: int, user_id: int) -> User:
        """The account of a staff member of this practice (for the copy of their data)."""
        async with self._engine.connect() as conn:
            await self._member(conn, practice_id, user_id)
            user = await user_store.user_by_id(conn, user_id)
        assert user is not None  # a member has an account
        return user

    async def _member(self, conn: AsyncConnection, practice_id: int, user_id: int) -> StaffMember:
        member = await store.staff_member(conn, practice_id, user_id)
        if member is None:
            raise StaffMemberNotFound("staff_not_found", N_("There is no such staff member in this practice."))
        return member

    async def _keep_an_admin(self, conn: AsyncConnection, practice_id: int, member: StaffMember) -> None:
        if member.role == "admin" and member.active and await store.count_active(conn, practice_id, "admin") <= 1:
            raise _last_admin()

    async def change_role(self, practice_id: int, user_id: int, choice: str, *, actor: int) -> None:
        """`choice`: one of ROLE_CHOICES."""
        if choice not in ROLE_CHOICES:
            raise UserError("role_invalid", N_("Please choose a role."))
        role, treats_patients = ROLE_CHOICES[choice]
        async with self._engine.begin() as conn:
            member = await self._member(conn, practice_id, user_id)
            if role_choice(member) == choice:
                return
            if role != "admin":
                await self._keep_an_admin(conn, practice_id, member)
            if treats_patients and not member.treats_patients and member.active:
                await self._plans.require_free_seat(conn, practice_id)
            await store.set_role(conn, practice_id, user_id, role, treats_patients)
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
            if member.treats_patients:
                await self._plans.require_free_seat(conn, practice_id)
            await store.set_deactivated(conn, practice_id, user_id, None)
            await self._audit.record(conn, practice_id, actor, "member_reactivated", "user", user_id)

    async def delete(self, practice_id: int, user_id: int, *, actor: int) -> bool:
        """Erase a staff member (GDPR art. 17): the whole account when this is their only
        practice, else what this practice holds about them; never the last active admin.
        Their seat is free and their sessions end at once. The audit entry keeps the fact,
        with no actor once the actor is gone. True: the whole account went."""
        async with self._engine.begin() as conn:
            member = await self._member(conn, practice_id, user_id)
            await self._keep_an_admin(conn, practice_id, member)
            user = await user_store.user_by_id(conn, user_id)
            assert user is not None  # a member has an account
            emails = sorted({address.lower() for address in (user.email, user.pending_email) if address})
            whole = not user.is_operator and await personal_store.other_memberships(conn, user_id, practice_id) == 0
            await self._audit.record(conn, practice_id, actor, "staff_deleted", "user", user_id)
            if whole:
                await personal_store.erase(conn, user_id, emails)
            else:
                await personal_store.erase_staff_from_practice(conn, practice_id, user_id, emails)
        return whole
