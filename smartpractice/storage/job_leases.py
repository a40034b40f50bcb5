"""Leases on periodic jobs: whoever holds an unexpired lease runs the job."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.tables import job_leases


async def take(conn: AsyncConnection, name: str, holder: str, *, now: datetime, until: datetime) -> bool:
    """Take or renew the lease; False while another holder's lease runs.

    One INSERT … ON CONFLICT DO UPDATE … WHERE: on PostgreSQL a second taker waits for the
    first to commit and then sees its row; on SQLite writers are serialised. Either way
    exactly one of two racing holders gets a row back."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = module.insert(job_leases).values(name=name, holder=holder, expires_at=until)
    statement = statement.on_conflict_do_update(
        index_elements=[job_leases.c.name],
        set_={"holder": holder, "expires_at": until},
        where=or_(job_leases.c.expires_at <= now, job_leases.c.holder == holder),
    ).returning(job_leases.c.name)
    return (await conn.execute(statement)).first() is not None


async def release(conn: AsyncConnection, holder: str) -> int:
    """Give up every lease of this holder, so another instance need not wait for expiry."""
    return (await conn.execute(delete(job_leases).where(job_leases.c.holder == holder))).rowcount


async def holder_of(conn: AsyncConnection, name: str, now: datetime) -> str | None:
    query = select(job_leases.c.holder).where(job_leases.c.name == name, job_leases.c.expires_at > now)
    return (await conn.execute(query)).scalar_one_or_none()
