"""Plans and seats: a practice pays by its kind and its number of clinician seats.

The price table comes from configuration (SMARTPRACTICE_PRICE_TABLE). There is no
payment processing: the operator sets a practice's kind and how many seats it may book,
and the practice's admin books seats within that. Only active clinicians take a seat;
admins and patients never do.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smartpractice.audit import Audit
from smartpractice.config import Plan
from smartpractice.errors import UserError
from smartpractice.i18n import N_, NP_
from smartpractice.storage import practice_settings as store
from smartpractice.storage import staff as staff_store
from smartpractice.storage.practices import Practice

MAX_SEATS = 10_000
KIND_LABELS = {
    "single": N_("Single practice"),
    "group": N_("Group practice"),
    "mvz": N_("Medical care centre (MVZ)"),
    "therapy": N_("Psychotherapy practice"),
}


@dataclass(frozen=True)
class SeatUsage:
    kind: str
    plan: Plan | None
    seats: int
    max_seats: int
    used: int

    @property
    def monthly_price(self) -> int | None:
        return None if self.plan is None else self.plan.monthly_price(self.seats)


class Plans:
    def __init__(self, *, engine: AsyncEngine, audit: Audit, price_table: tuple[Plan, ...], self_service_seats: int) -> None:
        self._engine = engine
        self._audit = audit
        self.price_table = price_table
        self._self_service_seats = self_service_seats

    def plan(self, kind: str) -> Plan | None:
        return next((plan for plan in self.price_table if plan.kind == kind), None)

    async def usage(self, practice_id: int, conn: AsyncConnection | None = None) -> SeatUsage:
        if conn is None:
            async with self._engine.connect() as conn:
                return await self.usage(practice_id, conn)
        plan = await store.plan_of(conn, practice_id)
        assert plan is not None
        used = await staff_store.count_treating(conn, practice_id)
        ceiling = plan.max_seats if plan.max_seats is not None else self._self_service_seats
        return SeatUsage(plan.kind, self.plan(plan.kind), plan.seats, max(ceiling, plan.seats), used)

    async def require_free_seat(self, conn: AsyncConnection, practice_id: int, *, reserved: int = 0) -> None:
        """Refuse one more active clinician when every seat is taken (`reserved`: promised ones)."""
        usage = await self.usage(practice_id, conn)
        if usage.used + reserved >= usage.seats:
            raise UserError(
                "seats_exhausted",
                NP_("The %(seats)d clinician seat of your plan is taken. An admin can book more seats "
                    "under “Plan and seats” (up to %(ceiling)d; for more, please ask the operator of the "
                    "service), or deactivate a clinician who no longer works here.",
                    "All %(seats)d clinician seats of your plan are taken. An admin can book more seats "
                    "under “Plan and seats” (up to %(ceiling)d; for more, please ask the operator of the "
                    "service), or deactivate a clinician who no longer works here."),
                number="seats", seats=usage.seats, ceiling=usage.max_seats,
            )

    async def book_seats(self, practice: Practice, seats: int, *, actor: int) -> None:
        """The admin's choice, between the clinicians already active and the operator's ceiling."""
        async with self._engine.begin() as conn:
            usage = await self.usage(practice.id, conn)
            if not max(1, usage.used) <= seats <= usage.max_seats:
                raise UserError(
                    "seats_invalid",
                    N_("Please choose between %(low)d and %(high)d seats: at least one for each active "
                       "clinician, and for more than %(high)d please ask the operator of the service."),
                    low=max(1, usage.used), high=usage.max_seats,
                )
            await store.set_plan(conn, practice.id, seats=seats)
            await self._audit.record(conn, practice.id, actor, "seats_changed", "practice", practice.id)

    async def set_by_operator(
        self, practice_id: int, *, kind: str, seats: int, max_seats: int | None, actor: int | None
    ) -> None:
        if self.plan(kind) is None:
            raise UserError("kind_invalid", N_("Please choose a kind of practice from the price table."))
        if not 1 <= seats <= MAX_SEATS or (max_seats is not None and not 1 <= max_seats <= MAX_SEATS):
            raise UserError("seats_invalid_number", N_("Seats must be a number between 1 and 10000."))
        async with self._engine.begin() as conn:
            await store.set_plan(conn, practice_id, kind=kind, seats=seats, max_seats=max_seats)
            await self._audit.record(conn, practice_id, actor, "plan_changed", "practice", practice_id)
