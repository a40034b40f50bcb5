"""A Monday-morning rush: many patients logging in and loading pages at once.

    python benchmarks/logins.py                      # SQLite in a temporary folder, 200 clients, 60 s
    python benchmarks/logins.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench
    python benchmarks/logins.py --duration 20        # a shorter run

Each client is a browser of its own (its own cookies): the login page, the login form,
the start page, its dashboard four times, log out, and again. Told to retry (503 with Retry-After), it
waits as long as it was told and sends the form again. The server (`smartpractice serve`
with the production argon2 parameters) runs on core 0, the clients on core 1.

It passes when no answer is a 5xx other than a 503 with Retry-After, and every answer
(served or told to retry) arrives within 10 s. It prints served logins per second.
Not a test: it takes a minute or more; PostgreSQL's schema is dropped and made anew.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import aiohttp
import argon2
import seeding

SERVER_CORE, CLIENT_CORE = 0, 1
LIMIT_SECONDS = 10.0
PAGES_PER_LOGIN = 3
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class Tally:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self.failures: Counter = Counter()  # what fails the run
        self.logins = 0

    def note(self, kind: str, status: int, seconds: float, retry_after: str | None) -> None:
        self.latencies[kind].append(seconds)
        self.statuses[kind][status] += 1
        if status >= 500 and not (status == 503 and retry_after and retry_after.isdigit()):
            self.failures[f"{kind} {status}"] += 1
        if seconds > LIMIT_SECONDS:
            self.failures[f"{kind} over {LIMIT_SECONDS:.0f} s"] += 1


async def request(session, tally: Tally, kind: str, method: str, url: str, **kwargs):
    started = time.monotonic()
    try:
        async with session.request(method, url, allow_redirects=False, **kwargs) as response:
            body = await response.text()
    except (TimeoutError, aiohttp.ClientError) as error:
        tally.failures[f"{kind} {type(error).__name__}"] += 1
        return None, ""
    tally.note(kind, response.status, time.monotonic() - started, response.headers.get("Retry-After"))
    return response, body


async def patient(base: str, number: int, people: seeding.People, tally: Tally, until: float) -> None:
    username, slug = people.patients[number], people.slug
    jar = aiohttp.CookieJar(unsafe=True)
    timeout = aiohttp.ClientTimeout(total=3 * LIMIT_SECONDS)
    # Each patient from an address of their own, as a reverse proxy in front would pass it on.
    address = {"X-Forwarded-For": f"10.{number // 65536}.{number // 256 % 256}.{number % 256}"}
    async with aiohttp.ClientSession(base_url=base, cookie_jar=jar, timeout=timeout, headers=address) as session:
        while time.monotonic() < until:
            response, page = await request(session, tally, "login page", "GET", "/login")
            if response is None or response.status != 200:
                await asyncio.sleep(int(response.headers.get("Retry-After", 1)) if response is not None else 1)
                continue
            token = CSRF_FIELD.search(page).group(1)
            form = {"identifier": username, "password": seeding.PASSWORD, "csrf_token": token}
            while time.monotonic() < until:
                response, _ = await request(session, tally, "login", "POST", "/login", data=form)
                if response is None or response.status != 503:
                    break
                await asyncio.sleep(int(response.headers["Retry-After"]))
            if response is None or response.status != 303:
                continue
            tally.logins += 1
            await request(session, tally, "home", "GET", "/")
            for _ in range(PAGES_PER_LOGIN):
                await request(session, tally, "dashboard", "GET", f"/p/{slug}/")
            _, page = await request(session, tally, "dashboard", "GET", f"/p/{slug}/")
            found = CSRF_FIELD.search(page)
            if found:
                await request(session, tally, "logout", "POST", "/logout", data={"csrf_token": found.group(1)})
            jar.clear()


def report(tally: Tally, seconds: float) -> None:
    for kind, latencies in tally.latencies.items():
        ordered = sorted(latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(tally.statuses[kind].items()))
        print(f"  {kind:<11} {len(ordered):6d} answers  p50 {statistics.median(ordered) * 1000:7.0f} ms  "
              f"p99 {p99 * 1000:7.0f} ms  max {ordered[-1] * 1000:7.0f} ms  ({statuses})")
    print(f"  served logins: {tally.logins} in {seconds:.0f} s = {tally.logins / seconds:.1f} logins/s")


async def rush(base: str, people: seeding.People, clients: int, seconds: float) -> Tally:
    tally = Tally()
    until = time.monotonic() + seconds
    await asyncio.gather(*(
        patient(base, number, people, tally, until) for number in range(clients)
    ))
    return tally


def hash_time(count: int = 10) -> str:
    """The production hash's cost on this machine, on one core as the server pays it."""
    hasher = argon2.PasswordHasher()
    walls, cpus = [], []
    for _ in range(count + 1):
        wall, cpu = time.perf_counter(), time.process_time()  # process: argon2's lanes are threads
        hasher.hash(seeding.PASSWORD)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return (f"argon2id t={hasher.time_cost}, {hasher.memory_cost // 1024} MiB, p={hasher.parallelism} on one core: "
            f"median {statistics.median(walls[1:]) * 1000:.0f} ms per hash, "
            f"{statistics.median(cpus[1:]) * 1000:.0f} ms CPU ({count} hashes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    parser.add_argument("--duration", type=float, default=60, help="seconds of rush (default 60)")
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients (default 200)")
    args = parser.parse_args()
    print("$ python", " ".join(sys.argv), flush=True)
    with tempfile.TemporaryDirectory(prefix="logins-bench-") as folder:
        data = Path(folder)
        url = args.database_url or f"sqlite+aiosqlite:///{data / 'bench.sqlite3'}"
        people = seeding.run(seeding.seed(url, patients=args.clients))
        port = seeding.free_port()
        server = seeding.start_server(
            seeding.server_environment(data, url, port, TRUSTED_PROXIES="127.0.0.1"), port, core=SERVER_CORE, log_path=data / "server.log"
        )
        try:
            os.sched_setaffinity(0, {SERVER_CORE})
            print(hash_time(), flush=True)
            os.sched_setaffinity(0, {CLIENT_CORE})
            print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, database {url.split(':')[0]}, "
                  f"server on core {SERVER_CORE}, {args.clients} clients on core {CLIENT_CORE}, "
                  f"{args.duration:.0f} s, niceness {os.environ.get('SMARTPRACTICE_BENCH_NICE', '0')}, "
                  f"load {seeding.load_average()}", flush=True)
            server_before, clients_before = seeding.cpu_seconds(server.pid), time.process_time()
            started = time.monotonic()
            tally = asyncio.run(rush(f"http://127.0.0.1:{port}", people, args.clients, args.duration))
            elapsed = time.monotonic() - started
            server_cpu = (seeding.cpu_seconds(server.pid) - server_before) / elapsed
            clients_cpu = (time.process_time() - clients_before) / elapsed
        finally:
            seeding.stop(server)
        report(tally, elapsed)
        print(f"  server CPU {server_cpu:.2f} core (hashing threads included), clients CPU {clients_cpu:.2f} core, "
              f"load {seeding.load_average()}")
        errors = [line for line in (data / "server.log").read_text().splitlines() if " ERROR " in line]
        print(f"  server log: {len(errors)} errors", *errors[:5], sep="\n    ")
        if tally.failures:
            print("FAILED:", ", ".join(f"{what}: {count}" for what, count in sorted(tally.failures.items())))
            raise SystemExit(1)
        print(f"PASSED: no 5xx but 503 with Retry-After, every answer within {LIMIT_SECONDS:.0f} s")


if __name__ == "__main__":
    main()
