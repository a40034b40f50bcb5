"""A practice's own settings and its plan, as one row of `practices`."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.tables import memberships, practices


@dataclass(frozen=True)
class PracticeSettings:
    name: str
    contact: str
    address: str
    time_zone: str
    consultation_minutes: int
    join_window_minutes: int
    max_participants: int
    tan_delivery: str
    relay_policy: str
    e2ee_policy: str
    self_registration: bool
    retention_days: int | None


@dataclass(frozen=True)
class PracticePlan:
    practice_id: int
    kind: str
    seats: int
    max_seats: int | None
    created_at: datetime
    confirmed_at: datetime | None
    suspended_at: datetime | None


SETTING_COLUMNS = tuple(field.name for field in fields(PracticeSettings))


async def settings_of(conn: AsyncConnection, practice_id: int) -> PracticeSettings:
    row = (await conn.execute(select(practices).where(practices.c.id == practice_id))).one()
    return PracticeSettings(**{name: getattr(row, name) for name in SETTING_COLUMNS})


async def save_settings(conn: AsyncConnection, practice_id: int, settings: PracticeSettings) -> None:
    values = {name: getattr(settings, name) for name in SETTING_COLUMNS}
    await conn.execute(update(practices).where(practices.c.id == practice_id).values(**values))


def _plan(row) -> PracticePlan:
    return PracticePlan(row.id, row.kind, row.seats, row.max_seats, row.created_at, row.confirmed_at, row.suspended_at)


async def plan_of(conn: AsyncConnection, practice_id: int) -> PracticePlan | None:
    row = (await conn.execute(select(practices).where(practices.c.id == practice_id))).first()
    return None if row is None else _plan(row)


async def set_plan(conn: AsyncConnection, practice_id: int, **values: object) -> None:
    """Change `kind`, `seats` and/or `max_seats`."""
    await conn.execute(update(practices).where(practices.c.id == practice_id).values(**values))


@dataclass(frozen=True)
class PracticeOverview:
    """A line of the operator's list of practices."""

    id: int
    slug: str
    name: str
    kind: str
    seats: int
    max_seats: int | None
    clinicians: int
    created_at: datetime
    confirmed_at: datetime | None
    suspended_at: datetime | None


async def all_practices(conn: AsyncConnection) -> list[PracticeOverview]:
    clinicians = (
        select(func.count())
        .where(
            memberships.c.practice_id == practices.c.id, memberships.c.role == "clinician",
            memberships.c.deactivated_at.is_(None),
        )
        .scalar_subquery()
    )
    query = select(practices, clinicians.label("clinicians")).order_by(practices.c.created_at.desc())
    return [
        PracticeOverview(
            row.id, row.slug, row.name, row.kind, row.seats, row.max_seats, row.clinicians,
            row.created_at, row.confirmed_at, row.suspended_at,
        )
        for row in await conn.execute(query)
    ]
