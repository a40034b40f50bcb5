"""Purge benchmark: a fresh database with one million expired and one million live rows of
session metadata, then one purge; prints rows deleted per second and peak memory.

    python benchmarks/purge.py --database-url sqlite+aiosqlite:////tmp/purge-bench.sqlite3
    python benchmarks/purge.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench --reset

Each side is --calls calls (default 500,000) with one attendance each, spread over one
consultation per 500 calls: the expired side started 95 to 101 days ago, the live side in
the last week. The database is filled by a child process, so that the peak resident size
(ru_maxrss) reported is the purging process's own. Not a test: it takes minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from smartpractice.clock import FrozenClock
from smartpractice.config import Settings
from smartpractice.jobs.retention import BATCH_SIZE, purge_expired
from smartpractice.storage.engine import create_engine, upgrade
from smartpractice.storage.tables import attendances, calls, consultations, practices

CALLS_PER_CONSULTATION = 500
CHUNK = 50_000


def side(now: datetime, count: int, *, expired: bool, first_id: int):
    """Consultation and call rows of one side; ids are given so attendances can follow."""
    newest = now - timedelta(days=95 if expired else 0, hours=1)
    first_consultation = first_id // CALLS_PER_CONSULTATION + 1
    consultation_rows = []
    for number in range(count // CALLS_PER_CONSULTATION):
        starts_at = newest - timedelta(seconds=(number + 1) * CALLS_PER_CONSULTATION)
        consultation_rows.append({
            "id": first_consultation + number, "practice_id": 1, "title": "Sprechstunde",
            "starts_at": starts_at, "duration_minutes": 15, "state": "ended",
            "uid": f"bench-{first_consultation + number}", "sequence": 0,
            "created_at": starts_at, "updated_at": starts_at,
        })

    def call_rows():
        for number in range(count):
            started_at = newest - timedelta(seconds=number + 1)
            yield (first_id + number, 1, first_consultation + number // CALLS_PER_CONSULTATION,
                   started_at, started_at + timedelta(minutes=12))

    return consultation_rows, call_rows


def chunks(rows, size: int = CHUNK):
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def copy(conn, table, columns: list[str], rows) -> None:
    """COPY on PostgreSQL, executemany on SQLite; large chunks either way."""
    if conn.dialect.name == "postgresql":
        raw = (await conn.get_raw_connection()).driver_connection
        for chunk in chunks(rows):
            naive = [tuple(v.replace(tzinfo=None) if isinstance(v, datetime) else v for v in row) for row in chunk]
            await raw.copy_records_to_table(table.name, records=naive, columns=columns)
    else:
        for chunk in chunks(rows):
            await conn.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in chunk])


async def fill(url: str, now: datetime, count: int) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(practices.insert().values(id=1, slug="bench", name="Praxis Bench", created_at=now))
        for expired, first_id in ((True, 1), (False, count + 1)):
            consultation_rows, call_rows = side(now, count, expired=expired, first_id=first_id)
            await conn.execute(consultations.insert(), consultation_rows)
            await copy(conn, calls, ["id", "practice_id", "consultation_id", "started_at", "ended_at"], call_rows())
            attendance_rows = (
                (call_id, call_id, "patient", "desktop", started_at, ended_at)
                for call_id, _, _, started_at, ended_at in call_rows()
            )
            await copy(conn, attendances, ["id", "call_id", "role", "client_kind", "joined_at", "left_at"], attendance_rows)
        await conn.execute(text("ANALYZE"))
    await engine.dispose()


async def fresh_schema(url: str, reset: bool) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database)
        if path.exists() and not reset:
            sys.exit(f"{path} exists; pass --reset to delete it")
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)
    else:
        engine = create_engine(url)
        async with engine.begin() as conn:
            tables = (await conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))).scalar_one()
            if tables and not reset:
                sys.exit("the database has tables; pass --reset to drop the public schema")
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await engine.dispose()
    await upgrade(url)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def measure(url: str, now: datetime, count: int, batch_size: int) -> None:
    settings = Settings.from_env({}, DATABASE_URL=url, DATA_DIR=tempfile.gettempdir())
    clock = FrozenClock(now)
    engine = create_engine(url)
    started = time.perf_counter()
    would = await purge_expired(engine, settings, clock, dry_run=True)
    print(f"dry run: {time.perf_counter() - started:.1f} s, would delete {sum(would.values()):,} rows")
    baseline = peak_mib()
    started = time.perf_counter()
    deleted = await purge_expired(engine, settings, clock, batch_size=batch_size)
    elapsed = time.perf_counter() - started
    total = sum(deleted.values())
    for kind, number in deleted.items():
        if number:
            print(f"  {kind}: deleted {number:,}")
    print(f"purge: {total:,} rows in {elapsed:.1f} s = {total / elapsed:,.0f} rows/s (batches of {batch_size})")
    print(f"peak RSS (ru_maxrss) of the purging process: {peak_mib():.0f} MiB (before the purge: {baseline:.0f} MiB)")

    cutoff = now - timedelta(days=settings.retention_days)
    async with engine.connect() as conn:
        left_calls = (await conn.execute(select(func.count(), func.min(calls.c.id)).select_from(calls))).one()
        left_attendances = (await conn.execute(select(func.count()).select_from(attendances))).scalar_one()
        left_consultations = (await conn.execute(select(func.count()).select_from(consultations))).scalar_one()
        expired_left = (await conn.execute(select(func.count()).where(calls.c.started_at < cutoff))).scalar_one()
    await engine.dispose()
    expected = (count, count + 1, count, count // CALLS_PER_CONSULTATION, 0)
    found = (left_calls[0], left_calls[1], left_attendances, left_consultations, expired_left)
    ok = found == expected and would == deleted
    print(f"left: {found[0]:,} calls (first id {found[1]:,}), {found[2]:,} attendances, {found[3]:,} consultations, "
          f"{found[4]} expired calls; dry run matched: {would == deleted} -> {'OK' if ok else 'WRONG'}")
    if not ok:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--calls", type=int, default=500_000, help="calls per side, one attendance each")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--reset", action="store_true", help="delete the SQLite file or drop the public schema first")
    parser.add_argument("--fill-at", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.calls % CALLS_PER_CONSULTATION:
        parser.error(f"--calls must be a multiple of {CALLS_PER_CONSULTATION}")
    if args.fill_at:
        asyncio.run(fill(args.database_url, datetime.fromisoformat(args.fill_at), args.calls))
        return
    now = datetime.now(UTC).replace(microsecond=0)
    asyncio.run(fresh_schema(args.database_url, args.reset))
    started = time.perf_counter()
    fill_command = [sys.executable, __file__, "--database-url", args.database_url, "--calls", str(args.calls)]
    subprocess.run([*fill_command, "--fill-at", now.isoformat()], check=True)  # noqa: S603 - our own script
    print(f"filled {4 * args.calls:,} rows (calls and attendances, half expired) "
          f"in {time.perf_counter() - started:.0f} s")
    asyncio.run(measure(args.database_url, now, args.calls, args.batch_size))


if __name__ == "__main__":
    main()
