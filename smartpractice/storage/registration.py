"""A practice's self-registration: its link code and what its form asks."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.practices import Practice, practice_from_row
from smartpractice.storage.tables import practices


@dataclass(frozen=True)
class RegistrationOptions:
    code: str | None
    enabled: bool
    ask_date_of_birth: bool


def _options(row) -> RegistrationOptions:
    return RegistrationOptions(row.registration_code, row.self_registration, row.ask_date_of_birth)


async def options_of(conn: AsyncConnection, practice_id: int) -> RegistrationOptions:
    row = (await conn.execute(select(practices).where(practices.c.id == practice_id))).one()
    return _options(row)


async def set_code(conn: AsyncConnection, practice_id: int, code: str, *, only_if_missing: bool = False) -> None:
    statement = update(practices).where(practices.c.id == practice_id)
    if only_if_missing:
        # Two first views at once: the first code written wins, the other is dropped.
        statement = statement.where(practices.c.registration_code.is_(None))
    await conn.execute(statement.values(registration_code=code))


async def set_options(conn: AsyncConnection, practice_id: int, *, enabled: bool, ask_date_of_birth: bool) -> None:
    await conn.execute(
        update(practices)
        .where(practices.c.id == practice_id)
        .values(self_registration=enabled, ask_date_of_birth=ask_date_of_birth)
    )


async def practice_by_code(conn: AsyncConnection, code: str) -> tuple[Practice, RegistrationOptions] | None:
    row = (await conn.execute(select(practices).where(practices.c.registration_code == code))).first()
    if row is None:
        return None
    return practice_from_row(row), _options(row)
