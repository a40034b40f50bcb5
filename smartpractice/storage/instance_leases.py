"""Leases on what only one server instance may hold at a time (tables.instance_leases)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.tables import instance_leases


class Lease(NamedTuple):
    holder: str
    description: str
    expires_at: datetime
    renewals: int


async def take(conn: AsyncConnection, name: str, holder: str, description: str, *,
               now: datetime, until: datetime) -> bool:
    """Take or renew the lease; False while another holder's lease runs. One INSERT …
    ON CONFLICT DO UPDATE … WHERE, as for job leases: of two racing takers exactly one
    gets a row back."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = module.insert(instance_leases).values(
        name=name, holder=holder, description=description, expires_at=until, renewals=0)
    statement = statement.on_conflict_do_update(
        index_elements=[instance_leases.c.name],
        set_={"holder": holder, "description": description, "expires_at": until,
              "renewals": instance_leases.c.renewals + 1},
        where=or_(instance_leases.c.expires_at <= now, instance_leases.c.holder == holder),
    ).returning(instance_leases.c.name)
    return (await conn.execute(statement)).first() is not None


async def current(conn: AsyncConnection, name: str) -> Lease | None:
    """The lease as it stands, expired or not."""
    columns = instance_leases.c
    query = select(columns.holder, columns.description, columns.expires_at, columns.renewals).where(columns.name == name)
    row = (await conn.execute(query)).first()
    return None if row is None else Lease(*row)


async def release(conn: AsyncConnection, name: str, holder: str) -> None:
    await conn.execute(delete(instance_leases).where(instance_leases.c.name == name,
                                                     instance_leases.c.holder == holder))
