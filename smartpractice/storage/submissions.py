"""One-time form tokens: which form sending made what, so a second sending makes nothing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.tables import form_submissions


async def claim(conn: AsyncConnection, key: str, now: datetime) -> bool:
    """Take the key in one statement; False if another sending has it. A sending still in
    flight makes this wait (its row lock) until it commits or rolls back, so two at once
    cannot both make their record."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        module.insert(form_submissions)
        .values(key=key, created_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(form_submissions.c.key)
    )
    return (await conn.execute(statement)).first() is not None


async def settle(conn: AsyncConnection, key: str, object_kind: str, object_id: int) -> None:
    await conn.execute(
        update(form_submissions).where(form_submissions.c.key == key)
        .values(object_kind=object_kind, object_id=object_id)
    )


async def made_by(conn: AsyncConnection, key: str) -> tuple[str, int] | None:
    query = select(form_submissions.c.object_kind, form_submissions.c.object_id).where(form_submissions.c.key == key)
    row = (await conn.execute(query)).first()
    if row is None or row.object_kind is None or row.object_id is None:
        return None
    return row.object_kind, row.object_id
