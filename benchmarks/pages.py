"""Pages per second on one core: an aiohttp hello-world, the anonymous login page and the
logged-in dashboards of a clinician and an admin, measured one after the other in one run.

    python benchmarks/pages.py                       # SQLite in a temporary folder
    python benchmarks/pages.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench

The server (`smartpractice serve`, access log and all) and the hello-world are pinned to
core 0; wrk (Debian package `wrk`) runs on core 1 with one thread. The CPU both take in
each window is printed: the server near a whole core and wrk well below one means the
server is what limits the figure, not the load generator. Not a test: it takes a minute.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from urllib.request import Request, urlopen

import seeding

HELLO = textwrap.dedent("""
    import sys
    from aiohttp import web
    async def hello(request):
        return web.Response(text="Hello, world")
    app = web.Application()
    app.router.add_get("/", hello)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
""")
SERVER_CORE, LOAD_CORE = 0, 1


def wrk(url: str, *, cookie: str | None, seconds: int, connections: int,
        core: int = LOAD_CORE) -> tuple[dict, float, list[str]]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if cookie:
        command[-1:-1] = ["-H", f"Cookie: sp_session={cookie}"]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, preexec_fn=seeding.pinned(core))
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"wrk failed: {output}")
    elapsed = time.monotonic() - started
    return parse(output), (usage.ru_utime + usage.ru_stime) / elapsed, command


def parse(output: str) -> dict:
    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": ms("50%"), "p99": ms("99%"),
        "bad": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "none",
    }


def check_page(url: str, cookie: str | None, expected: str) -> None:
    """The page answers 200 with what the person would see, not a redirect to the login."""
    request = Request(url, headers={"Cookie": f"sp_session={cookie}"} if cookie else {})
    with urlopen(request) as response:
        body = response.read().decode()
        if response.status != 200 or expected not in body or response.url != url:
            raise SystemExit(f"{url} did not show {expected!r} (status {response.status}, at {response.url})")


def measure(name: str, process, url: str, *, cookie: str | None, args) -> None:
    before = seeding.cpu_seconds(process.pid)
    started = time.monotonic()
    figures, load_cpu, command = wrk(url, cookie=cookie, seconds=args.duration, connections=args.connections)
    server_cpu = (seeding.cpu_seconds(process.pid) - before) / (time.monotonic() - started)
    shown = " ".join("Cookie: sp_session=…" if part.startswith("Cookie") else part for part in command)
    # On a shared machine the server may not get its whole core: requests per CPU-second
    # says what a core it had to itself would serve, requests/s what it served.
    print(f"{name:<20} {figures['rps']:8.0f} requests/s  p50 {figures['p50']:6.2f} ms  p99 {figures['p99']:6.2f} ms  "
          f"server CPU {server_cpu:.2f} core ({figures['rps'] / server_cpu:.0f} requests per CPU-second), "
          f"wrk CPU {load_cpu:.2f} core, non-2xx/3xx {figures['bad']}, "
          f"socket errors {figures['socket_errors']}, load {seeding.load_average()}", flush=True)
    print(f"{'':<20} $ {shown}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    parser.add_argument("--duration", type=int, default=10, help="seconds per page (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    args = parser.parse_args()
    print("$ python", " ".join(sys.argv), flush=True)
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk: apt-get install wrk")
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two cores: one for the server, one for wrk")
    with tempfile.TemporaryDirectory(prefix="pages-bench-") as folder:
        data = Path(folder)
        url = args.database_url or f"sqlite+aiosqlite:///{data / 'bench.sqlite3'}"
        people = seeding.run(seeding.seed(url))
        cookies = {role: seeding.run(seeding.session_cookie(url, name))
                   for role, name in (("clinician", people.clinician), ("admin", people.admin))}
        print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, database {url.split(':')[0]}, "
              f"server and hello-world on core {SERVER_CORE}, wrk on core {LOAD_CORE}, "
              f"{args.connections} connections, {args.duration} s per page, "
              f"niceness {os.environ.get('SMARTPRACTICE_BENCH_NICE', '0')}, load {seeding.load_average()}", flush=True)

        port = seeding.free_port()
        hello = subprocess.Popen([sys.executable, "-c", HELLO, str(port)], preexec_fn=seeding.pinned(SERVER_CORE))
        try:
            seeding.wait_for_port(port, hello)
            measure("hello-world", hello, f"http://127.0.0.1:{port}/", cookie=None, args=args)
        finally:
            seeding.stop(hello)

        port = seeding.free_port()
        environment = seeding.server_environment(data, url, port)
        server = seeding.start_server(environment, port, core=SERVER_CORE, log_path=data / "server.log")
        base = f"http://127.0.0.1:{port}"
        dashboard = f"{base}/p/{people.slug}/"
        try:
            check_page(f"{base}/login", None, 'name="password"')
            check_page(dashboard, cookies["clinician"], "waiting-room")
            check_page(dashboard, cookies["admin"], f"/p/{people.slug}/audit")
            measure("login page", server, f"{base}/login", cookie=None, args=args)
            measure("dashboard clinician", server, dashboard, cookie=cookies["clinician"], args=args)
            measure("dashboard admin", server, dashboard, cookie=cookies["admin"], args=args)
        finally:
            seeding.stop(server)
        errors = [line for line in (data / "server.log").read_text().splitlines() if " ERROR " in line]
        print(f"server log: {len(errors)} errors", *errors[:5], sep="\n  ")


if __name__ == "__main__":
    main()
