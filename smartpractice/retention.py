"""The purge: what has expired or passed the retention period goes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.clock import Clock
from smartpractice.config import Settings
from smartpractice.storage import audit, link_tokens, login_sessions, mails, offers, throttles

# Failure counters older than this carry no lock and no open window.
THROTTLE_KEEP = timedelta(days=1)


async def purge_expired(engine: AsyncEngine, settings: Settings, clock: Clock, *, dry_run: bool) -> dict[str, int]:
    now = clock.now()
    idle_since = now - timedelta(minutes=settings.session_idle_minutes)
    async with engine.begin() as conn:
        counts = {
            "login sessions": await login_sessions.delete_expired(conn, now=now, idle_since=idle_since),
            "rate-limit counters": await throttles.delete_stale(conn, now - THROTTLE_KEEP),
            "used or expired links": await link_tokens.delete_finished(conn, now),
            "mails": await mails.delete_older_than(conn, now - timedelta(days=settings.retention_days)),
            "audit entries": await audit.delete_expired(conn, now=now, site_days=settings.retention_days),
            "offer requests": await offers.delete_older_than(conn, now - timedelta(days=settings.retention_days)),
        }
        if dry_run:
            await conn.rollback()
    return counts
