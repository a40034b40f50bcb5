"""What the page and login benchmarks share: a database with one practice and its people,
the server as `smartpractice serve` runs it, pinned to one core, and the machine's load."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from smartpractice.accounts.passwords import Passwords
from smartpractice.clock import Clock
from smartpractice.config import Settings
from smartpractice.i18n import Catalogs
from smartpractice.services import build_services
from smartpractice.storage import practices as practice_store
from smartpractice.storage import users as user_store
from smartpractice.storage.engine import create_engine, upgrade

PASSWORD = "amber-violin-harbour-77"
SECRET = "benchmark-secret-" + "x" * 40
PRACTICE = "Praxis Benchmark"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_environment(data_dir: Path, database_url: str, port: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "SMARTPRACTICE_DATA_DIR": str(data_dir),
        "SMARTPRACTICE_DATABASE_URL": database_url,
        "SMARTPRACTICE_SECRET_KEY": SECRET,
        "SMARTPRACTICE_BASE_URL": f"http://127.0.0.1:{port}",
        "SMARTPRACTICE_PURGE_INTERVAL_MINUTES": "0",
        "SMARTPRACTICE_HOUSEKEEPING_SECONDS": "0",
        # `serve` refuses to start without who runs it (docs/configuration.md, "The operator").
        "SMARTPRACTICE_OPERATOR_NAME": "Benchmark",
        "SMARTPRACTICE_OPERATOR_ADDRESS": "Beispielweg 1, 12345 Berlin",
        "SMARTPRACTICE_OPERATOR_CONTACT": "bench@example.org",
        **{f"SMARTPRACTICE_{name}": value for name, value in extra.items()},
    }


def pinned(core: int | None):
    """A preexec_fn that keeps a child process on one core (None: where the kernel puts it),
    at the niceness of SMARTPRACTICE_BENCH_NICE if set: on a machine others are loading, a
    negative one (as root) gives the measured processes their core nearly to themselves, as
    on a quiet one."""
    niceness = int(os.environ.get("SMARTPRACTICE_BENCH_NICE", "0"))

    def pin() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})
        if niceness:
            os.setpriority(os.PRIO_PROCESS, 0, niceness)
            # With autogroup scheduling the kernel first shares the CPU between sessions and
            # niceness counts only inside one: a session of its own, and that session's niceness.
            os.setsid()
            autogroup = Path("/proc/self/autogroup")
            if autogroup.exists():
                autogroup.write_text(str(niceness))

    return pin


def start_server(environment: dict[str, str], port: int, *, core: int, log_path: Path) -> subprocess.Popen:
    """`smartpractice serve` as an operator runs it, access log included."""
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "smartpractice", "serve", "--port", str(port)],
        env=environment, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pinned(core),
    )
    wait_for_port(port, process)
    return process


def wait_for_port(port: int, process: subprocess.Popen, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port} after {within} s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def reset_postgresql(database_url: str) -> None:
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@dataclass(frozen=True)
class People:
    slug: str
    admin: str
    clinician: str
    patients: list[str]


async def seed(database_url: str, *, patients: int = 0, hasher=None) -> People:
    """A practice with an admin, a clinician and `patients` patients, every one with a
    chosen password (no initial one to replace) and a confirmed address."""
    if make_url(database_url).get_backend_name() == "postgresql":
        await reset_postgresql(database_url)
    await upgrade(database_url)
    engine = create_engine(database_url)
    settings = Settings.from_env({}, DATABASE_URL=database_url, SECRET_KEY=SECRET)
    passwords = Passwords(concurrency=os.cpu_count() or 1, hasher=hasher)
    services = build_services(
        engine=engine, settings=settings, clock=Clock(), secret=SECRET, catalogs=Catalogs(),
        links=None, passwords=passwords,
    )
    created = await services.practices.create(
        PRACTICE, admin_email="admin@example.org", admin_username="bench-admin", admin_name="Anna Admin"
    )
    password_hash = await passwords.hash(PASSWORD)
    names = [f"bench-patient-{number}" for number in range(patients)]
    async with engine.begin() as conn:
        now = services.clock.now()
        admin = await user_store.user_by_login(conn, created.admin_username)
        await user_store.set_password(conn, admin.id, password_hash, now=now)
        for username, role in [("bench-clinician", "clinician"), *((name, "patient") for name in names)]:
            user_id = await user_store.insert_user(
                conn, username=username, email=f"{username}@example.org", display_name=username,
                password_hash=password_hash, must_change_password=False, initial_password_expires_at=None,
                email_confirmed_at=now, language=None, now=now,
            )
            await practice_store.add_member(conn, practice_id=created.practice.id, user_id=user_id, role=role, now=now)
    await engine.dispose()
    return People(created.practice.slug, "bench-admin", "bench-clinician", names)


async def session_cookie(database_url: str, username: str) -> str:
    """A login session as a completed login (both factors given) leaves it."""
    engine = create_engine(database_url)
    settings = Settings.from_env({}, DATABASE_URL=database_url, SECRET_KEY=SECRET)
    services = build_services(
        engine=engine, settings=settings, clock=Clock(), secret=SECRET, catalogs=Catalogs(), links=None,
        passwords=Passwords(concurrency=1),
    )
    async with engine.begin() as conn:
        user = await user_store.user_by_login(conn, username)
        token = await services.sessions.start(conn, user.id, "benchmark")
    await engine.dispose()
    return token


def run(coroutine):
    return asyncio.run(coroutine)
