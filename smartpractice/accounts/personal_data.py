"""A person's data rights (GDPR art. 15, 17, 20): a copy of what the service holds about
them, as JSON, and its erasure, by the person or by a practice admin for a patient of the
practice. Each erasure is audited; the entry keeps the fact, never the identity
(docs/privacy-operations.md)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.storage import personal_data as store
from smartpractice.storage import users as user_store
from smartpractice.storage.practices import Practice
from smartpractice.storage.users import User

EXPORT_FORMAT = "smartpractice-personal-data/1"


def plain(value: object) -> object:
    """Dates and times as ISO 8601, for JSON."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def as_json(document: dict) -> str:
    """The one text of every export, downloaded or written by the command line."""
    return json.dumps(document, ensure_ascii=False, indent=2)


def _addresses(user: User) -> list[str]:
    return sorted({address.lower() for address in (user.email, user.pending_email) if address})


class NotDeletable(UserError):
    pass


class PersonalData:
    def __init__(self, *, engine: AsyncEngine, clock: Clock, audit: Audit) -> None:
        self._engine = engine
        self._clock = clock
        self._audit = audit

    async def export(self, user: User, *, practice: Practice | None = None, actor: int | None = None) -> dict:
        """Everything about `user`, or (for a practice admin, `actor`) what `practice` holds
        about them; an admin's copy of someone else's data is audited, a person's own is not."""
        practice_id = practice.id if practice else None
        emails = _addresses(user)
        async with self._engine.begin() as conn:
            if practice is not None and actor is not None:
                await self._audit.record(conn, practice.id, actor, "personal_data_exported", "user", user.id)
            data = {
                "format": EXPORT_FORMAT,
                "exported_at": self._clock.now(),
                "scope": practice.name if practice else "all",
                "account": await store.account(conn, user.id),
                "practices": await store.practices_of(conn, user.id, practice_id),
                "consultations": await store.consultations_of(conn, user.id, emails, practice_id),
                "consultations_held": await store.consultations_held(conn, user.id, practice_id),
                "invitations": await store.invitations_to(conn, emails, practice_id),
                "call_attendances": await store.attendances_of(conn, user.id, practice_id),
                "audit_entries": await store.audit_about(conn, user.id, practice_id),
            }
            if practice is None:
                data["login_sessions"] = await store.sessions_of(conn, user.id)
        return plain(data)  # type: ignore[return-value]

    async def delete_account(self, user: User, *, actor: int | None, staff_too: bool = False) -> None:
        """Erase the person everywhere; ends their sessions (they go with the row). Staff
        accounts only with `staff_too` (the operator's command)."""
        if user.is_operator:
            raise NotDeletable("operator_not_deletable",
                               N_("The operator's account cannot be deleted here; create another operator first."))
        async with self._engine.begin() as conn:
            roles = {membership["role"] for membership in await store.practices_of(conn, user.id)}
            if not staff_too and roles - {"patient"}:
                # A practice must not lose its clinician or admin by a click of theirs.
                raise NotDeletable("staff_not_deletable", N_(
                    "Accounts of a practice's staff are removed by the practice's admin. Ask them, or leave "
                    "the practice first."))
            sole_admin_of = await store.practices_only_admined_by(conn, user.id)
            if sole_admin_of:
                # A practice without an admin cannot manage its staff, seats or settings.
                raise NotDeletable("last_admin", N_(
                    "%(login)s is the only active admin of %(practices)s. Make someone else an admin there "
                    "first, or delete the practice."), login=user.username, practices=", ".join(sole_admin_of))
            practice_ids = await store.practice_ids_of(conn, user.id)
            await self._audit.record_in_each(conn, practice_ids, actor, "account_deleted", "user", user.id)
            if not practice_ids:
                await self._audit.record(conn, None, actor, "account_deleted", "user", user.id)
            await store.erase(conn, user.id, _addresses(user))

    async def delete_practice(self, practice: Practice, *, notice: timedelta) -> int:
        """The operator deletes a practice once it has been suspended for the notice period:
        the practice, everything it held, and the accounts of people who belonged only to it.
        A site-wide audit entry keeps the fact. Returns how many accounts went with it."""
        async with self._engine.begin() as conn:
            suspended_at = await store.suspended_since(conn, practice.id)
            if suspended_at is None or self._clock.now() - suspended_at < notice:
                raise NotDeletable("practice_not_due", N_(
                    "A practice can be deleted once it has been suspended for %(days)d days."), days=notice.days)
            sole = await store.sole_members(conn, practice.id)
            await self._audit.record(conn, None, None, "practice_deleted", "practice", practice.id)
            for user_id, emails in sole:
                await self._audit.record(conn, None, None, "account_deleted", "user", user_id)
                await store.erase(conn, user_id, emails)
            await store.delete_practice(conn, practice.id)
        return len(sole)

    async def delete_patient(self, practice: Practice, user_id: int, *, actor: int) -> bool:
        """A practice admin erases a patient of the practice: the whole account when this is
        their only practice, else what this practice holds about them. True: the account went."""
        async with self._engine.begin() as conn:
            user = await user_store.patient_of(conn, practice.id, user_id)
            if user is None:
                raise NotDeletable("patient_not_found", N_("There is no such patient in this practice."))
            whole = await store.other_memberships(conn, user.id, practice.id) == 0
            await self._audit.record(conn, practice.id, actor, "patient_deleted", "user", user.id)
            if whole:
                await store.erase(conn, user.id, _addresses(user))
            else:
                await store.erase_from_practice(conn, practice.id, user.id, _addresses(user))
        return whole
