"""TOTP secrets and recovery codes of users who log in with a second factor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.tables import recovery_codes, second_factors
from smartpractice.storage.upsert import upsert


@dataclass(frozen=True)
class SecondFactor:
    user_id: int
    secret: str | None
    pending_secret: str | None
    enrolled_at: datetime | None
    last_used_step: int | None


async def factor_of(conn: AsyncConnection, user_id: int) -> SecondFactor | None:
    row = (await conn.execute(select(second_factors).where(second_factors.c.user_id == user_id))).first()
    if row is None:
        return None
    return SecondFactor(row.user_id, row.secret, row.pending_secret, row.enrolled_at, row.last_used_step)


async def set_pending(conn: AsyncConnection, user_id: int, secret: str) -> None:
    await upsert(conn, second_factors, "user_id", {"user_id": user_id, "pending_secret": secret})


async def activate_pending(conn: AsyncConnection, user_id: int, *, now: datetime, step: int) -> None:
    await conn.execute(
        update(second_factors)
        .where(second_factors.c.user_id == user_id, second_factors.c.pending_secret.is_not(None))
        .values(secret=second_factors.c.pending_secret, pending_secret=None, enrolled_at=now, last_used_step=step)
    )


async def use_step(conn: AsyncConnection, user_id: int, step: int) -> bool:
    """Record that the code of `step` was used; False if it or a later one already was.

    One conditional UPDATE, so two requests with the same code cannot both pass.
    """
    column = second_factors.c.last_used_step
    result = await conn.execute(
        update(second_factors)
        .where(second_factors.c.user_id == user_id, or_(column.is_(None), column < step))
        .values(last_used_step=step)
    )
    return result.rowcount == 1


async def replace_recovery_codes(conn: AsyncConnection, user_id: int, hmacs: list[str], now: datetime) -> None:
    await conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
    for code_hmac in hmacs:
        await conn.execute(insert(recovery_codes).values(user_id=user_id, code_hmac=code_hmac, created_at=now))


async def use_recovery_code(conn: AsyncConnection, user_id: int, code_hmac: str, now: datetime) -> bool:
    result = await conn.execute(
        update(recovery_codes)
        .where(
            recovery_codes.c.user_id == user_id,
            recovery_codes.c.code_hmac == code_hmac,
            recovery_codes.c.used_at.is_(None),
        )
        .values(used_at=now)
    )
    return result.rowcount == 1


async def unused_recovery_codes(conn: AsyncConnection, user_id: int) -> int:
    query = select(func.count()).where(recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None))
    return (await conn.execute(query)).scalar_one()


async def remove(conn: AsyncConnection, user_id: int) -> bool:
    """The app and the recovery codes go; at the next login the user sets up a new app."""
    await conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
    return (await conn.execute(delete(second_factors).where(second_factors.c.user_id == user_id))).rowcount > 0
