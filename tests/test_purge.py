"""The purge deletes exactly what passed the retention period or expired, and keeps the rest."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import func, select

from smartpractice.cli import main
from smartpractice.clock import FrozenClock
from smartpractice.jobs.retention import purge_expired
from smartpractice.storage.engine import create_engine
from smartpractice.storage.tables import (
    attendances,
    audit_log,
    calls,
    consultations,
    form_submissions,
    invitations,
    link_tokens,
    login_sessions,
    mails,
    offer_requests,
    participants,
    practices,
    reminders,
    throttles,
)
from tests import metadata_rows as rows

SECOND = timedelta(seconds=1)
NOTHING = {
    "login sessions": 0, "rate-limit counters": 0, "used or expired links": 0, "form tokens": 0, "calls": 0,
    "attendances": 0, "consultations": 0, "ad-hoc invitations": 0, "mails": 0,
    "audit entries": 0, "offer requests": 0,
}


async def fill(engine, clock, user_id: int, margin: timedelta = SECOND) -> dict[str, set]:
    """Rows `margin` either side of the retention cutoff and a second either side of the
    other limits; returns the ids the purge must delete."""
    now = clock.now()
    cutoff = now - timedelta(days=90)
    gone: dict[str, set] = {name: set() for name in ("consultations", "calls", "invitations", "other")}
    async with engine.begin() as conn:
        practice = await rows.practice(conn, now)

        async def held(starts_at, state="ended", minutes=30):
            return await rows.consultation(conn, practice, starts_at=starts_at, minutes=minutes, state=state)

        # Ended a second before the cutoff, with a call, attendances, a guest and a reminder.
        old = await held(cutoff - timedelta(minutes=30) - margin)
        gone["calls"].add(await rows.call(conn, old, started_at=cutoff - timedelta(minutes=30)))
        guest = await rows.invitation(conn, practice, expires_at=cutoff, consultation_id=old)
        await rows.participant_with_reminder(conn, old, guest)
        gone["consultations"] |= {
            old,
            await held(cutoff - timedelta(hours=2), state="cancelled"),
            await held(cutoff - timedelta(hours=3), state="scheduled"),  # never held
            await held(cutoff - timedelta(minutes=45) - margin, minutes=45),
        }
        gone["invitations"].add(guest)
        # Kept: ends a second after the cutoff; running; upcoming with a guest; cancelled
        # yesterday; and one that ended before the cutoff but whose call started after it.
        await held(cutoff - timedelta(minutes=30) + margin)
        await held(cutoff - timedelta(days=5), state="running", minutes=60)
        upcoming = await held(now + timedelta(days=1), state="scheduled")
        await rows.participant_with_reminder(
            conn, upcoming, await rows.invitation(conn, practice, expires_at=now - timedelta(days=100), consultation_id=upcoming)
        )
        await held(now - timedelta(days=1), state="cancelled")
        late = await held(cutoff - timedelta(hours=1))
        await rows.call(conn, late, started_at=cutoff + margin)
        gone["calls"].add(await rows.call(conn, late, started_at=cutoff - margin, attending=1))

        gone["invitations"].add(await rows.invitation(conn, practice, expires_at=cutoff - margin))
        await rows.invitation(conn, practice, expires_at=cutoff + margin)

        gone["other"] |= {
            ("session", await rows.login_session(conn, last_seen_at=now - timedelta(minutes=31), expires_at=now + timedelta(hours=5))),
            ("session", await rows.login_session(conn, last_seen_at=now - timedelta(minutes=1), expires_at=now - SECOND)),
            ("link", await rows.link_token(conn, user_id, expires_at=now - SECOND)),
            ("link", await rows.link_token(conn, user_id, expires_at=now + timedelta(hours=1), used_at=now)),
            ("throttle", await rows.throttle(conn, window_started_at=now - timedelta(days=2))),
            ("form token", await rows.form_token(conn, created_at=now - timedelta(days=1) - SECOND)),
            ("mail", await rows.mail(conn, created_at=cutoff - margin)),
            ("mail", await rows.mail(conn, created_at=cutoff - timedelta(days=3), status="failed")),
            ("audit", await rows.audit_entry(conn, practice, created_at=cutoff - margin)),
            ("offer", await rows.offer_request(conn, created_at=cutoff - margin)),
        }
        await rows.audit_entry(conn, practice, created_at=cutoff + margin)
        await rows.offer_request(conn, created_at=cutoff + margin)
        await rows.login_session(conn, last_seen_at=now - timedelta(minutes=29), expires_at=now + timedelta(hours=5))
        await rows.link_token(conn, user_id, expires_at=now + timedelta(hours=1))
        await rows.throttle(conn, window_started_at=now - timedelta(hours=23))
        await rows.form_token(conn, created_at=now - timedelta(hours=23))
        await rows.throttle(conn, window_started_at=now - timedelta(days=2), locked_until=now + timedelta(hours=1))
        await rows.mail(conn, created_at=cutoff + margin)
    return gone


EXPECTED = {
    "login sessions": 2, "rate-limit counters": 1, "used or expired links": 2, "form tokens": 1, "calls": 2,
    "attendances": 3, "consultations": 4, "ad-hoc invitations": 1, "mails": 2,
    "audit entries": 1, "offer requests": 1,
}


async def all_ids(engine) -> dict:
    async with engine.connect() as conn:
        return {table.name: await rows.ids(conn, table) for table in (
            consultations, calls, attendances, invitations, participants, reminders,
            login_sessions, link_tokens, throttles, mails, audit_log, offer_requests, form_submissions,
        )}


async def test_purge_deletes_exactly_the_expired_rows(engine, settings, clock, clinician):
    gone = await fill(engine, clock, clinician.user_id)
    before = await all_ids(engine)

    assert await purge_expired(engine, settings, clock) == EXPECTED

    after = await all_ids(engine)
    assert after["consultations"] == before["consultations"] - gone["consultations"]
    assert after["calls"] == before["calls"] - gone["calls"]
    assert after["invitations"] == before["invitations"] - gone["invitations"]
    # The kept call's two attendances, the upcoming consultation's guest and reminder.
    assert len(after["attendances"]) == 2
    assert len(after["participants"]) == len(after["reminders"]) == 1
    by_kind = {"session": "login_sessions", "link": "link_tokens", "throttle": "throttles", "mail": "mails",
               "audit": "audit_log", "offer": "offer_requests", "form token": "form_submissions"}
    for kind, table in by_kind.items():
        expired = {key for label, key in gone["other"] if label == kind}
        assert after[table] == before[table] - expired, kind
    async with engine.connect() as conn:
        states = set((await conn.execute(select(consultations.c.state))).scalars())
    assert states == {"ended", "running", "scheduled", "cancelled"}


async def test_purge_with_a_later_clock_deletes_what_has_expired_since(engine, settings, clock, clinician):
    await fill(engine, clock, clinician.user_id)
    await purge_expired(engine, settings, clock)
    clock.advance(seconds=2)
    later = await purge_expired(engine, settings, clock)
    # The consultation that ended a second after the old cutoff, the call a second after it
    # (with it the consultation that waited for it), the invitation and the mail.
    assert later["consultations"] == 2 and later["calls"] == 1 and later["attendances"] == 2
    assert later["ad-hoc invitations"] == 1 and later["mails"] == 1


async def test_dry_run_deletes_nothing_and_counts_what_the_purge_deletes(engine, settings, clock, clinician):
    await fill(engine, clock, clinician.user_id)
    before = await all_ids(engine)
    assert await purge_expired(engine, settings, clock, dry_run=True) == EXPECTED
    assert await all_ids(engine) == before
    assert await purge_expired(engine, settings, clock) == EXPECTED
    assert await purge_expired(engine, settings, clock, dry_run=True) == NOTHING
    assert await purge_expired(engine, settings, clock) == NOTHING


async def many_expired_calls(engine, clock, count: int) -> None:
    old = clock.now() - timedelta(days=100)
    async with engine.begin() as conn:
        practice = await rows.practice(conn, clock.now())
        consultation = await rows.consultation(conn, practice, starts_at=old)
        await conn.execute(calls.insert(), [
            {"practice_id": practice, "consultation_id": consultation, "started_at": old, "ended_at": old}
            for _ in range(count)
        ])
        call_ids = await rows.ids(conn, calls)
        await conn.execute(attendances.insert(), [
            {"call_id": call_id, "role": "patient", "client_kind": "mobile", "joined_at": old}
            for call_id in call_ids
        ])


async def test_two_purges_at_once_delete_every_row_once(engine, settings, clock, database_url):
    await many_expired_calls(engine, clock, 1500)
    # Two server instances, each with its own engine.
    instances = [create_engine(database_url), create_engine(database_url)]
    try:
        first, second = await asyncio.gather(*(
            purge_expired(instance, settings, clock, batch_size=100) for instance in instances
        ))
    finally:
        for instance in instances:
            await instance.dispose()
    assert first["calls"] + second["calls"] == 1500
    assert first["attendances"] + second["attendances"] == 1500
    assert first["consultations"] + second["consultations"] == 1
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(calls))).scalar_one() == 0


async def test_a_purge_asked_to_stop_leaves_the_rest_for_the_next_run(engine, settings, clock):
    await many_expired_calls(engine, clock, 30)
    stopping = asyncio.Event()
    stopping.set()
    assert (await purge_expired(engine, settings, clock, stopping=stopping))["calls"] == 0
    assert (await purge_expired(engine, settings, clock, batch_size=7))["calls"] == 30


async def test_cli_prints_what_it_would_delete_and_then_deleted_per_kind(engine, cli_env, clinician):
    # The command runs on the real clock: an hour either side of the cutoff is plenty.
    await fill(engine, FrozenClock(), clinician.user_id, margin=timedelta(hours=1))
    run = CliRunner()
    dry = await asyncio.to_thread(run.invoke, main, ["purge", "--dry-run"], env=cli_env, catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    assert "calls: would delete 2\nattendances: would delete 3\nconsultations: would delete 4\n" in dry.output
    assert "ad-hoc invitations: would delete 1\nmails: would delete 2\n" in dry.output
    real = await asyncio.to_thread(run.invoke, main, ["purge"], env=cli_env, catch_exceptions=False)
    assert real.output.splitlines()[3:] == [
        "form tokens: deleted 1", "calls: deleted 2", "attendances: deleted 3", "consultations: deleted 4",
        "ad-hoc invitations: deleted 1", "mails: deleted 2", "audit entries: deleted 1", "offer requests: deleted 1",
    ]


async def test_a_practice_with_a_shorter_period_loses_its_records_sooner(engine, settings, clock):
    now = clock.now()
    async with engine.begin() as conn:
        brief, usual = await rows.practice(conn, now), await rows.practice(conn, now)
        await conn.execute(practices.update().where(practices.c.id == brief).values(retention_days=30))
        for practice in (brief, usual):
            held = await rows.consultation(conn, practice, starts_at=now - timedelta(days=31))
            await rows.call(conn, held, started_at=now - timedelta(days=31))
            await rows.audit_entry(conn, practice, created_at=now - timedelta(days=31))
            await rows.audit_entry(conn, practice, created_at=now - timedelta(days=29))
    would = await purge_expired(engine, settings, clock, dry_run=True)
    deleted = await purge_expired(engine, settings, clock)
    assert deleted["calls"] == deleted["consultations"] == deleted["audit entries"] == 1 and would == deleted
    async with engine.connect() as conn:
        left = (await conn.execute(select(calls.c.practice_id))).scalars().all()
        kept = (await conn.execute(select(audit_log.c.practice_id))).scalars().all()
    assert left == [usual] and sorted(kept) == sorted([brief, usual, usual])


async def test_a_dry_run_counts_a_shorter_periods_old_records_once(engine, settings, clock):
    now = clock.now()
    async with engine.begin() as conn:
        brief = await rows.practice(conn, now)
        await conn.execute(practices.update().where(practices.c.id == brief).values(retention_days=30))
        # Past the site's period as well as the practice's own.
        await rows.audit_entry(conn, brief, created_at=now - timedelta(days=settings.retention_days + 1))
        await rows.audit_entry(conn, brief, created_at=now - timedelta(days=31))
    would = await purge_expired(engine, settings, clock, dry_run=True)
    deleted = await purge_expired(engine, settings, clock)
    assert would["audit entries"] == deleted["audit entries"] == 2
