"""A practice's copy of everything the service holds for it (GDPR art. 20; a practice that
leaves takes its data along): the practice and its settings, its people with their
memberships, consultations with participants and calls, invitations, API keys, the audit
log. Without secrets (storage/practice_export.py). Each export is audited, and the entry is
part of the copy it made (docs/privacy-operations.md)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.accounts.personal_data import plain
from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.storage import practice_export as store
from smartpractice.storage.practices import Practice
from smartpractice.storage.tables import STAFF_ROLES

EXPORT_FORMAT = "smartpractice-practice-export/1"


class PracticeExport:
    def __init__(self, *, engine: AsyncEngine, clock: Clock, audit: Audit) -> None:
        self._engine = engine
        self._clock = clock
        self._audit = audit

    async def export(self, practice: Practice, *, actor: int | None) -> dict:
        """`actor`: the admin who asked; None for the operator's command line."""
        async with self._engine.begin() as conn:
            await self._audit.record(conn, practice.id, actor, "practice_exported", "practice", practice.id)
            record, settings = await store.practice(conn, practice.id)
            people = await store.members(conn, practice.id)
            document = {
                "format": EXPORT_FORMAT,
                "exported_at": self._clock.now(),
                "practice": record,
                "settings": settings,
                "staff": [person for person in people if person["role"] in STAFF_ROLES],
                "patients": [person for person in people if person["role"] not in STAFF_ROLES],
                "consultations": await store.consultations_of(conn, practice.id),
                "invitations": await store.invitations_of(conn, practice.id),
                "staff_invitations": await store.staff_invitations_of(conn, practice.id),
                "api_keys": await store.api_keys_of(conn, practice.id),
                "audit_log": await store.audit_of(conn, practice.id),
            }
        return plain(document)  # type: ignore[return-value]
