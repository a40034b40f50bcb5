"""The audit log's rows: who did what to which object, when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.tables import audit_log, practices, users


@dataclass(frozen=True)
class AuditEntry:
    id: int
    practice_id: int | None
    practice_name: str | None
    actor_user_id: int | None
    actor: str | None  # the actor's user name at reading time
    action: str
    object_kind: str
    object_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class AuditFilter:
    practice_id: int | None = None  # None: every practice (the operator's view)
    action: str = ""
    since: datetime | None = None
    until: datetime | None = None


async def insert_entry(
    conn: AsyncConnection,
    *,
    practice_id: int | None,
    actor_user_id: int | None,
    action: str,
    object_kind: str,
    object_id: str | None,
    now: datetime,
) -> None:
    await conn.execute(
        insert(audit_log).values(
            practice_id=practice_id, actor_user_id=actor_user_id, action=action,
            object_kind=object_kind, object_id=object_id, created_at=now,
        )
    )


async def exists(conn: AsyncConnection) -> bool:
    """False in a schema older than the audit log (taken back below revision 0004)."""
    return await conn.run_sync(lambda sync: inspect(sync).has_table(audit_log.name))


def _where(query, where: AuditFilter):
    if where.practice_id is not None:
        query = query.where(audit_log.c.practice_id == where.practice_id)
    if where.action:
        query = query.where(audit_log.c.action == where.action)
    if where.since is not None:
        query = query.where(audit_log.c.created_at >= where.since)
    if where.until is not None:
        query = query.where(audit_log.c.created_at < where.until)
    return query


async def entries(conn: AsyncConnection, where: AuditFilter, *, limit: int | None) -> list[AuditEntry]:
    query = _where(
        select(audit_log, users.c.username, practices.c.name.label("practice_name"))
        .outerjoin(users, users.c.id == audit_log.c.actor_user_id)
        .outerjoin(practices, practices.c.id == audit_log.c.practice_id),
        where,
    ).order_by(audit_log.c.created_at.desc(), audit_log.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [
        AuditEntry(
            id=row.id, practice_id=row.practice_id, practice_name=row.practice_name,
            actor_user_id=row.actor_user_id, actor=row.username, action=row.action,
            object_kind=row.object_kind, object_id=row.object_id, created_at=row.created_at,
        )
        for row in await conn.execute(query)
    ]


async def actions(conn: AsyncConnection, practice_id: int | None) -> list[str]:
    query = _where(select(audit_log.c.action).distinct(), AuditFilter(practice_id=practice_id))
    return sorted((await conn.execute(query)).scalars())
