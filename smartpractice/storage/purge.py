"""The purge's SQL: which rows have expired, counted, or deleted in bounded batches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Table,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from smartpractice.storage.tables import (
    ConsultationState,
    UTCDateTime,
    attendances,
    calls,
    consultations,
    invitations,
    link_tokens,
    login_sessions,
    practices,
    throttles,
)

# A consultation in any other state (running, or one added later) is never purged.
FINISHED_OR_SCHEDULED = (ConsultationState.SCHEDULED, ConsultationState.ENDED, ConsultationState.CANCELLED)


@dataclass(frozen=True)
class Expired:
    """Rows of one table that may go. Each of `children` (a name and a foreign key of a
    dependent table) is deleted and counted with its parents, rather than left to
    ON DELETE CASCADE, so that the count is honest and one statement stays small."""

    table: Table
    where: ColumnElement[bool]
    children: tuple[tuple[str, Column], ...] = ()

    @property
    def key(self) -> Column:
        return next(iter(self.table.primary_key.columns))


@dataclass(frozen=True)
class Batch:
    selected: int
    last_key: Any
    deleted: dict[str, int]


class _ends_before(FunctionElement):  # noqa: N801 - an SQL construct, named like one
    """starts_at + duration_minutes < cutoff, in each dialect's date arithmetic."""

    type = Boolean()
    name = "ends_before"
    inherit_cache = True


@compiles(_ends_before, "postgresql")
def _ends_before_postgresql(element, compiler, **kw) -> str:
    start, minutes, cutoff = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({start} + make_interval(mins => {minutes})) < {cutoff}"


@compiles(_ends_before, "sqlite")
def _ends_before_sqlite(element, compiler, **kw) -> str:
    # julianday() on both sides: the stored text and the bound cutoff parse alike, whatever
    # their fractional digits (a plain string comparison would get that wrong).
    start, minutes, cutoff = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"(julianday({start}) + {minutes} / 1440.0) < julianday({cutoff})"


def of_practice(expired: Expired, practice_id: int) -> Expired:
    return Expired(expired.table, expired.where & (expired.table.c.practice_id == practice_id), expired.children)


def excluding(expired: Expired, other: Expired) -> Expired:
    """What `expired` selects and `other`, of the same table, does not."""
    return Expired(expired.table, expired.where & ~other.where, expired.children)


async def shorter_retention(conn: AsyncConnection, site_days: int) -> list[tuple[int, int]]:
    """Practices that keep records for fewer days than the site: (id, days)."""
    query = select(practices.c.id, practices.c.retention_days).where(practices.c.retention_days < site_days)
    return [(row.id, row.retention_days) for row in await conn.execute(query)]


def older_than(column: Column, cutoff: datetime) -> Expired:
    return Expired(column.table, column < cutoff)


def login_sessions_ended(now: datetime, idle_since: datetime) -> Expired:
    return Expired(
        login_sessions,
        or_(login_sessions.c.expires_at <= now, login_sessions.c.last_seen_at <= idle_since),
    )


def link_tokens_finished(now: datetime) -> Expired:
    return Expired(link_tokens, or_(link_tokens.c.expires_at <= now, link_tokens.c.used_at.is_not(None)))


def throttles_stale(before: datetime) -> Expired:
    return Expired(
        throttles,
        (throttles.c.window_started_at < before)
        & (throttles.c.locked_until.is_(None) | (throttles.c.locked_until < before)),
    )


def calls_started_before(cutoff: datetime) -> Expired:
    return Expired(calls, calls.c.started_at < cutoff, children=(("attendances", attendances.c.call_id),))


def consultations_ended_before(cutoff: datetime) -> Expired:
    """Past consultations whose calls the purge does not keep; their participants,
    reminders and invitations (a handful each) go by ON DELETE CASCADE."""
    kept_call = exists().where(calls.c.consultation_id == consultations.c.id, calls.c.started_at >= cutoff)
    return Expired(
        consultations,
        consultations.c.state.in_(FINISHED_OR_SCHEDULED)
        # Implied by the next line; it lets the index on starts_at narrow the scan.
        & (consultations.c.starts_at < cutoff)
        & _ends_before(consultations.c.starts_at, consultations.c.duration_minutes, literal(cutoff, UTCDateTime))
        & ~kept_call,
    )


def adhoc_invitations_expired_before(cutoff: datetime) -> Expired:
    """Invitations bound to a consultation go with the consultation."""
    return Expired(invitations, invitations.c.consultation_id.is_(None) & (invitations.c.expires_at < cutoff))


async def count(conn: AsyncConnection, expired: Expired) -> dict[str, int]:
    """How many rows a purge would delete now: the table's own under "", then its children's."""
    query = select(func.count()).select_from(expired.table).where(expired.where)
    counts = {"": (await conn.execute(query)).scalar_one()}
    for name, column in expired.children:
        parents = select(expired.key).where(expired.where)
        query = select(func.count()).select_from(column.table).where(column.in_(parents))
        counts[name] = (await conn.execute(query)).scalar_one()
    return counts


async def delete_batch(conn: AsyncConnection, expired: Expired, *, after: Any, limit: int) -> Batch:
    """Delete up to `limit` expired rows with keys above `after`, and their children.

    The condition is repeated in the DELETE: a row that changed since it was selected
    (a consultation that started) stays, and a row another purge deleted first is not
    counted twice, because only rowcounts are added up."""
    key = expired.key
    query = select(key).where(expired.where).order_by(key).limit(limit)
    if after is not None:
        query = query.where(key > after)
    if conn.dialect.name == "postgresql":
        # Two purges at once take disjoint batches instead of queueing on each other's
        # rows (and can never deadlock on them). SQLite serialises writers anyway.
        query = query.with_for_update(skip_locked=True)
    ids = list((await conn.execute(query)).scalars())
    if not ids:
        return Batch(0, after, {})
    deleted: dict[str, int] = {}
    still_expired = select(key).where(key.in_(ids), expired.where)
    for name, column in expired.children:
        deleted[name] = (await conn.execute(delete(column.table).where(column.in_(still_expired)))).rowcount
    deleted[""] = (await conn.execute(delete(expired.table).where(key.in_(ids), expired.where))).rowcount
    return Batch(len(ids), ids[-1], deleted)
