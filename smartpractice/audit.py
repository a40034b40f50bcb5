"""The audit log of staff actions (BSI TR-03161, KBV Anlage 31b): who, what, when, which object.

`record` is called by the other services inside the transaction of the action itself, so
an action and its entry commit or roll back together. Action names are an open set of
short strings (docs/security.md lists them); an entry never holds health content, only
the kind and id of the object touched.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smartpractice.clock import Clock
from smartpractice.storage import audit as store
from smartpractice.storage.audit import AuditEntry
from smartpractice.storage.audit import AuditFilter as AuditFilter

PAGE_SIZE = 200
CSV_COLUMNS = ("time_utc", "practice", "actor", "action", "object_kind", "object_id")


class Audit:
    def __init__(self, *, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    async def record(
        self,
        conn: AsyncConnection,
        practice_id: int | None,
        actor_user_id: int | None,
        action: str,
        object_kind: str = "",
        object_id: int | str | None = None,
    ) -> None:
        """Write one entry in the caller's transaction."""
        await store.insert_entry(
            conn, practice_id=practice_id, actor_user_id=actor_user_id, action=action[:40],
            object_kind=object_kind[:40], object_id=None if object_id is None else str(object_id)[:64],
            now=self._clock.now(),
        )

    async def record_in_each(
        self, conn: AsyncConnection, practice_ids: list[int], actor_user_id: int | None, action: str,
        object_kind: str = "", object_id: int | str | None = None,
    ) -> None:
        """One entry per practice, for actions of a person rather than of a practice (a login)."""
        for practice_id in practice_ids:
            await self.record(conn, practice_id, actor_user_id, action, object_kind, object_id)

    async def entries(self, where: AuditFilter, *, limit: int | None = PAGE_SIZE) -> list[AuditEntry]:
        async with self._engine.connect() as conn:
            return await store.entries(conn, where, limit=limit)

    async def actions(self, practice_id: int | None) -> list[str]:
        async with self._engine.connect() as conn:
            return await store.actions(conn, practice_id)

    async def csv(self, where: AuditFilter) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for entry in await self.entries(where, limit=None):
            writer.writerow([
                _iso(entry.created_at), _cell(entry.practice_name or ""), _cell(entry.actor or ""),
                entry.action, entry.object_kind, entry.object_id or "",
            ])
        return buffer.getvalue()


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell(value: str) -> str:
    # A leading =, +, - or @ would run as a formula in a spreadsheet (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value
