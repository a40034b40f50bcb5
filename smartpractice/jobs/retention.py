"""The purge: what has expired or passed the retention period goes.

Each kind is deleted in batches of BATCH_SIZE rows, each batch its own short transaction,
so no lock is held for long and no more than one batch of keys is ever in memory."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.clock import Clock
from smartpractice.config import Settings
from smartpractice.storage import purge
from smartpractice.storage.tables import audit_log, form_submissions, mails, offer_requests

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
# Failure counters older than this carry no lock and no open window.
THROTTLE_KEEP = timedelta(days=1)
# A form's one-time token matters while someone may still reload or resend it.
FORM_TOKEN_KEEP = timedelta(days=1)


def expired_kinds(settings: Settings, now: datetime) -> list[tuple[str, purge.Expired]]:
    """What the purge deletes, in this order; adding a kind is adding a line."""
    cutoff = now - timedelta(days=settings.retention_days)
    calls_held, consultations_held, audit_entries = (expired for _, expired in retained_kinds(cutoff))
    return [
        ("login sessions", purge.login_sessions_ended(now, now - timedelta(minutes=settings.session_idle_minutes))),
        ("rate-limit counters", purge.throttles_stale(now - THROTTLE_KEEP)),
        ("used or expired links", purge.link_tokens_finished(now)),
        ("form tokens", purge.older_than(form_submissions.c.created_at, now - FORM_TOKEN_KEEP)),
        # Calls before consultations: a consultation stays while a call of it is kept.
        ("calls", calls_held),
        ("consultations", consultations_held),
        ("ad-hoc invitations", purge.adhoc_invitations_expired_before(cutoff)),
        # Every state: a mail still pending after the retention period will never be sent.
        ("mails", purge.older_than(mails.c.created_at, cutoff)),
        ("audit entries", audit_entries),
        ("offer requests", purge.older_than(offer_requests.c.created_at, cutoff)),
    ]


def retained_kinds(cutoff: datetime) -> list[tuple[str, purge.Expired]]:
    """What a retention period decides, the site's or a practice's shorter one."""
    return [
        ("calls", purge.calls_started_before(cutoff)),
        ("consultations", purge.consultations_ended_before(cutoff)),
        ("audit entries", purge.older_than(audit_log.c.created_at, cutoff)),
    ]


def practice_kinds(practice_id: int, cutoff: datetime, site_cutoff: datetime) -> list[tuple[str, purge.Expired]]:
    """For a practice that keeps its records for less than the site's period: only what
    the site's period leaves, so that a dry run counts nothing twice."""
    site = dict(retained_kinds(site_cutoff))
    return [(kind, purge.of_practice(purge.excluding(expired, site[kind]), practice_id))
            for kind, expired in retained_kinds(cutoff)]


def _named(kind: str, counts: dict[str, int]) -> dict[str, int]:
    return {name or kind: count for name, count in counts.items()}


async def purge_expired(
    engine: AsyncEngine,
    settings: Settings,
    clock: Clock,
    *,
    dry_run: bool = False,
    stopping: asyncio.Event | None = None,
    batch_size: int = BATCH_SIZE,
) -> dict[str, int]:
    """Delete (or with `dry_run` count) what has expired; returns a count per kind.

    Safe to run twice at once: each returns what it deleted itself. When `stopping` is set
    it returns between two batches with what it has done so far; the rest goes next time."""
    now = clock.now()
    kinds = expired_kinds(settings, now)
    async with engine.connect() as conn:
        for practice_id, days in await purge.shorter_retention(conn, settings.retention_days):
            kinds += practice_kinds(practice_id, now - timedelta(days=days), now - timedelta(days=settings.retention_days))
    totals: dict[str, int] = {}
    for kind, expired in kinds:
        if dry_run:
            # Counted with what is already counted: the same kind may come once per practice.
            async with engine.connect() as conn:
                for name, count in _named(kind, await purge.count(conn, expired)).items():
                    totals[name] = totals.get(name, 0) + count
            continue
        for name in (kind, *(name for name, _ in expired.children)):
            totals.setdefault(name, 0)
        after = None
        while not (stopping and stopping.is_set()):
            async with engine.begin() as conn:
                batch = await purge.delete_batch(conn, expired, after=after, limit=batch_size)
            for name, count in _named(kind, batch.deleted).items():
                totals[name] += count
            if batch.selected < batch_size:
                break
            after = batch.last_key
    if not dry_run and any(totals.values()):
        log.info("purge deleted %s", ", ".join(f"{kind} {count}" for kind, count in totals.items() if count))
    return totals
