"""INSERT … ON CONFLICT for the two dialects we run on; SQLAlchemy keeps it per dialect."""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


async def upsert(conn: AsyncConnection, table: Table, key: str, values: dict) -> None:
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = module.insert(table).values(**values)
    changes = {name: value for name, value in values.items() if name != key}
    await conn.execute(statement.on_conflict_do_update(index_elements=[key], set_=changes))
