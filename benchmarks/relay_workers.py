"""Relay workers benchmark: streams forwarded at full frame rate with one and with two
`smartpractice relay-worker` processes, and what relay load does to the logged-in page of
a web instance running beside them.

    python benchmarks/relay_workers.py                 # 1 and 2 workers, 1:1; about 10 min
    python benchmarks/relay_workers.py --rounds 3      # the same three times over, growth over the rounds
    python benchmarks/relay_workers.py --workers 1 --steps 4,8 --window 2 --page-seconds 2   # smoke

Everything is real but the browsers: the workers are `smartpractice relay-worker`
processes registered in Redis (SMARTPRACTICE_TEST_REDIS_URL or 127.0.0.1:6379, a key
prefix of the run's own), and every offer goes to them the way a web instance sends it
(rooms/relay_routing.py's WorkerRelays, in a router process). The load generator and its
validity rules are benchmarks/relay.py's (a step where the generator fell behind, could
not send, cost as much per packet as the relay or used more than 0.9 core is INVALID:
nothing is claimed from it). Relay CPU is the workers' CPU together.

Streams: for each worker count the streams grow step by step, each step within a time
limit (connecting its new streams, settling, measuring): a step that does not finish in
time, or whose offers the workers refuse, is FAIL, or INVALID when the generator used more
than 0.9 core meanwhile or a process of the benchmark's own died; the search goes on with
the next worker count. The generator and the router are pinned to core 1 (as in relay.py),
the generator at nice -10; the workers are not pinned, so the kernel gives them what the
generator leaves (without the priority a worker on core 1 held the generator back, and
its late frames made the step INVALID), as it would one worker per core on a machine that
also runs other things. The largest passing step is that count's
figure; growth is claimed only from a step that one worker FAILED and two PASSED, and with
--rounds N from more than half of N rounds run in turn.

Page: the web instance (`serve`, SMARTPRACTICE_RELAY_WORKERS=yes, same Redis) has core 0
and one worker relays --page-streams on core 1 with the generator, the deployment relay
workers make possible. wrk measures the clinician's dashboard from core 0, beside the web
instance, first with the worker idle, then under the streams: the same placement both
times, so the relay's own load on core 1 cannot reach the measuring tool (with wrk on core
1 it shares that core with the relay, and its own scheduling delay is read as the page's;
--wrk-core 1 shows that, for information), and once more idle after the streams, for the
machine's drift. PASS when the loaded p99 is at most 1.5 times the idle one before it;
with --rounds N, when the median of N such pairs in turn is. Last, for information, the
page with core 1 busy with a plain loop instead of the relay.
Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pages
import relay as relay_bench
import seeding

from smartpractice.rooms.redis_state import RedisRoomState, connect
from smartpractice.rooms.relay_routing import WorkerRelays

REDIS_URL = os.environ.get("SMARTPRACTICE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PAGE_RATIO = 1.5
SERVER_CORE, RELAY_CORE = 0, relay_bench.GENERATOR_CPU
# A step's time limit: connecting its new streams (a few per second on a loaded worker),
# settling, measuring, and this much to spare.
STEP_SPARE_SECONDS = 30.0
CONNECT_SECONDS_PER_STREAM = 0.5
CLOSE_SECONDS = 30.0
# The workers are not pinned and spill onto the generator's core; ahead of them the
# generator offers its load on time and they get what it leaves, not the other way round.
GENERATOR_NICE = -10


def generator_process(conn, relay_conn, clip: list[list[bytes]]) -> None:  # noqa: ANN001
    os.setpriority(os.PRIO_PROCESS, 0, GENERATOR_NICE)  # a process that may not dies: INVALID
    relay_bench.generator_process(conn, relay_conn, clip)


def router_process(conn, prefix: str, worker_pids: list[int]) -> None:  # noqa: ANN001
    # On the relay's side: nothing the benchmark runs for the relay may land on core 0.
    os.sched_setaffinity(0, {RELAY_CORE})
    asyncio.run(_route(conn, prefix, worker_pids))


async def _route(conn, prefix: str, worker_pids: list[int]) -> None:  # noqa: ANN001
    """relay.py's relay protocol over a pipe, answered by the workers through Redis."""
    loop = asyncio.get_running_loop()
    client = connect(REDIS_URL)
    state = RedisRoomState(client, prefix=prefix, name="bench")
    await state.start()
    relays = WorkerRelays(client, state, prefix=prefix)
    await relays.start()
    calls: dict[str, int] = {}
    while True:
        message = await loop.run_in_executor(None, conn.recv)
        if message[0] == "cpu":
            conn.send((sum(seeding.cpu_seconds(pid) for pid in worker_pids), time.monotonic(), 0))
        elif message[0] == "stop":
            for call in calls.values():
                await relays.release(call)
            await relays.close()
            await state.close()
            await client.aclose()
            conn.send(None)
            return
        else:
            _, room, participant, offer = message
            call = calls.setdefault(room, len(calls) + 1)
            publishing = participant == "pub"
            try:
                attached = await relays.attach(call, participant, offer, publisher=participant,
                                               receive_from=[] if publishing else ["pub"], publishing=publishing)
            except Exception as error:  # the generator reports it as the step's failure
                conn.send(("refused", type(error).__name__))
                continue
            conn.send(attached.answer)


class Stuck(Exception):
    """A step did not finish in time ("fail", or "invalid" when the generator was out of
    CPU), or a process of the benchmark's own died ("invalid")."""

    def __init__(self, result: str, why: str) -> None:
        super().__init__(why)
        self.result, self.why = result, why


class WorkersSession(relay_bench.Session):
    """relay.py's session with the router (and the workers behind it) as the relay, and a
    deadline for every answer it waits for."""

    def __init__(self, clip: list[list[bytes]], prefix: str, worker_pids: list[int]) -> None:
        context = multiprocessing.get_context("spawn")
        relay_end, relay_child = context.Pipe()
        self._conn, child = context.Pipe()
        self._relay = context.Process(target=router_process, args=(relay_child, prefix, worker_pids), daemon=True)
        self._generator = context.Process(target=generator_process, args=(child, relay_end, clip), daemon=True)
        self._callgrind = None
        self._relay.start()
        self._generator.start()
        self.fanout = 1
        self.deadline = float("inf")
        self._stuck = self._closed = False
        self._step = (0.0, 0.0)  # the generator's CPU seconds and the time when the step began

    def bound(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self._step = (seeding.cpu_seconds(self._generator.pid), time.monotonic())

    def _ask(self, *message: object):  # noqa: ANN202
        self._conn.send(message)
        while not self._conn.poll(0.2):
            for process, name in ((self._generator, "the load generator"), (self._relay, "the router")):
                if not process.is_alive():
                    self._stuck = True
                    raise Stuck("invalid", f"{name} died (exit code {process.exitcode})")
            if time.monotonic() > self.deadline:
                self._stuck = True
                cpu, began = self._step
                share = (seeding.cpu_seconds(self._generator.pid) - cpu) / max(time.monotonic() - began, 0.001)
                if share > 0.9:
                    raise Stuck("invalid", f"the step did not finish in time; the generator used {share:.2f} core")
                raise Stuck("fail", f"the step did not finish in time (the generator used {share:.2f} core)")
        return self._conn.recv()

    def close(self) -> None:
        """Stopped in an orderly way when it answers in time, else killed (at once after a
        step that did not finish: the generator still works at it). Once."""
        if self._closed:
            return
        self._closed = True
        if not self._stuck:
            self.deadline = time.monotonic() + CLOSE_SECONDS
            try:
                super().close()
                return
            except Stuck:
                pass
        for process in (self._generator, self._relay):
            process.kill()
            process.join(5)


class Workers:
    """`smartpractice relay-worker` processes under a key prefix of their own."""

    def __init__(self, count: int, folder: Path, name: str, core: int | None = None) -> None:
        self.prefix = f"bench-{os.getpid()}-{name}"
        env = {**os.environ, "SMARTPRACTICE_REDIS_URL": REDIS_URL, "SMARTPRACTICE_REDIS_PREFIX": self.prefix,
               "SMARTPRACTICE_DATA_DIR": str(folder)}
        self.processes = []
        for i in range(count):
            log = (folder / f"worker-{self.prefix}-{i}.log").open("wb")
            self.processes.append(subprocess.Popen([sys.executable, "-m", "smartpractice", "relay-worker"], env=env,
                                                   stdout=log, stderr=subprocess.STDOUT,
                                                   preexec_fn=seeding.pinned(core)))
        try:
            seeding.run(self._registered(count))
        except BaseException:
            self.stop()  # workers that did not register in time must not outlive the run
            raise

    async def _registered(self, count: int) -> None:
        client = connect(REDIS_URL)
        try:
            async with asyncio.timeout(60):
                while await client.scard(f"{self.prefix}:workers") < count:  # noqa: ASYNC110 - they register in Redis
                    await asyncio.sleep(0.2)
        finally:
            await client.aclose()

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def stop(self) -> None:
        for process in self.processes:
            seeding.stop(process)


def step_seconds(new_streams: int, window: float) -> float:
    return new_streams * CONNECT_SECONDS_PER_STREAM + relay_bench.SETTLE + window + STEP_SPARE_SECONDS


def run_step(session: WorkersSession, streams: int, grown: int, window: float) -> tuple[str, str, dict | None]:
    """('pass' | 'fail' | 'invalid', why, figures or None when the step did not finish)."""
    session.bound(step_seconds(streams - grown, window))
    try:
        session.grow(streams)
        r = session.measure(window)
    except Stuck as stuck:
        return stuck.result, f"{stuck.why} (limit {step_seconds(streams - grown, window):.0f} s)", None
    except relay_bench.RelayRefused as refused:
        return "fail", str(refused), None
    result, why = relay_bench.verdict(r)
    return result, why, r


def step_line(label: str, streams: int, result: str, why: str, r: dict | None) -> str:
    figures = (f"workers {r['relay_share']:.2f} core {r['relay_us']:6.1f} µs/packet | generator "
               f"{r['generator_share']:.2f} core {r['generator_us']:5.1f} µs/packet, frames up to "
               f"{r['lag'] * 1000:.0f} ms late | {r['fps']:4.1f} fps (slowest {r['min_fps']:4.1f}), loss "
               f"{r['loss']:.2%} | " if r else "")
    return (f"{label} {streams:4} streams 1:1: {figures}{result.upper()}" + (f": {why}" if why else "")
            + f", load {seeding.load_average()}")


def search(count: int, steps: list[int], clip, folder: Path, window: float) -> dict[int, str]:
    """Each step's result for `count` workers, until the first step that did not pass."""
    label = f"{count} worker{'s' if count > 1 else ''}"
    workers = Workers(count, folder, f"{count}w")
    session = WorkersSession(clip, workers.prefix, workers.pids)
    results: dict[int, str] = {}
    grown = 0
    try:
        for streams in steps:
            result, why, r = run_step(session, streams, grown, window)
            print(step_line(label, streams, result, why, r), flush=True)
            results[streams] = result
            grown = streams
            if result != "pass":
                break
    finally:
        session.close()
        workers.stop()
    most = ceiling(results)
    print(f"{label}: {most} streams at full frame rate (largest passing step{'' if most else '; none passed'})",
          flush=True)
    return results


def growth(searches: dict[int, dict[int, str]]) -> tuple[str, str]:
    """The round's line and its verdict (PASS, FAIL or NO CLAIM)."""
    one, two = searches.get(1), searches.get(2)
    if one is None or two is None:
        return "growth: needs --workers 1,2", "NO CLAIM"
    shown = [s for s in one if one[s] == "fail" and two.get(s) == "pass"]
    if shown:
        return f"growth: at {shown[0]} streams one worker FAILED and two PASSED", "PASS"
    failed = [s for s in one if one[s] == "fail"]
    if not failed:
        return "growth: one worker never FAILED at a valid step, so nothing shows what a second adds", "NO CLAIM"
    reached = two.get(failed[0]) or f"not reached: two ended {list(two.values())[-1].upper()} at {list(two)[-1]}"
    # Only a valid step of two workers can show that they carry less than one.
    invalid = "invalid" in (two.get(failed[0]), list(two.values())[-1])
    return (f"growth: one worker FAILED at {failed[0]} streams, and two did not pass it ({reached})",
            "NO CLAIM" if invalid else "FAIL")


def ceiling(results: dict[int, str]) -> int:
    return max((streams for streams, result in results.items() if result == "pass"), default=0)


def growth_over(rounds: list[dict[int, dict[int, str]]]) -> str:
    """One round's ceilings scatter with the host's load (docs/performance.md): growth over
    rounds is claimed when most rounds show it on their own and the median ceilings agree."""
    if any(1 not in searches or 2 not in searches for searches in rounds):
        return "growth over rounds: needs --workers 1,2"
    one = statistics.median(ceiling(searches[1]) for searches in rounds)
    two = statistics.median(ceiling(searches[2]) for searches in rounds)
    verdicts = [growth(searches)[1] for searches in rounds]
    shown = verdicts.count("PASS")
    if shown > len(rounds) / 2 and two > one:
        verdict = "PASS"
    else:
        # Rounds that ended INVALID claim nothing either way.
        verdict = "NO CLAIM" if "NO CLAIM" in verdicts else "FAIL"
    return (f"growth over {len(rounds)} rounds: median ceiling one worker {one:.0f}, two workers {two:.0f} streams"
            f"{f' ({two / one:.2f} times)' if one else ''}; shown in {shown} of {len(rounds)} rounds | {verdict}")


def preempted(pid: int) -> int:
    """How often the kernel took the CPU from a process's threads while they could run."""
    return sum(int(line.split()[1]) for status in Path(f"/proc/{pid}/task").glob("*/status")
               for line in status.read_text().splitlines() if line.startswith("nonvoluntary_ctxt_switches"))


def core_ticks(core: int) -> tuple[int, int]:
    """(steal, all) clock ticks of a core so far: steal is time the hypervisor gave this
    virtual core's turn to something else."""
    fields = next(line.split() for line in Path("/proc/stat").read_text().splitlines()
                  if line.startswith(f"cpu{core} "))
    ticks = [int(value) for value in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return ticks[7], sum(ticks)


def wrk(url: str, cookie: str, seconds: int, core: int, server: subprocess.Popen) -> dict:
    before, switches, started = seeding.cpu_seconds(server.pid), preempted(server.pid), time.monotonic()
    steal, ticks = core_ticks(SERVER_CORE)
    figures, wrk_share, _ = pages.wrk(url, cookie=cookie, seconds=seconds, connections=8, core=core)
    elapsed = time.monotonic() - started
    figures["server"] = (seeding.cpu_seconds(server.pid) - before) / elapsed
    figures["preempted"] = (preempted(server.pid) - switches) / elapsed
    figures["wrk"] = wrk_share
    steal_after, ticks_after = core_ticks(SERVER_CORE)
    figures["steal"] = (steal_after - steal) / max(ticks_after - ticks, 1)
    return figures


def page_line(name: str, loaded: dict, idle: dict) -> tuple[str, float]:
    ratio = loaded["p99"] / max(idle["p99"], 0.001)
    return (f"{name}: dashboard p99 {loaded['p99']:.2f} ms vs idle {idle['p99']:.2f} ms = {ratio:.2f}x (p50 "
            f"{loaded['p50']:.2f} vs {idle['p50']:.2f} ms), {loaded['rps']:.0f} vs {idle['rps']:.0f} requests/s, "
            f"web instance {loaded['server']:.2f} vs {idle['server']:.2f} core, preempted {loaded['preempted']:.0f} vs "
            f"{idle['preempted']:.0f} times/s, stolen from core {SERVER_CORE} {loaded['steal']:.1%} vs "
            f"{idle['steal']:.1%}, wrk {loaded['wrk']:.2f} vs {idle['wrk']:.2f} core, non-2xx "
            f"{loaded['bad']}"), ratio


def page_beside_relay(streams: int, clip, folder: Path, window: float, dashboard: str, cookie: str,
                      page_seconds: int, server: subprocess.Popen, wrk_core: int, rounds: int) -> None:
    """The web instance keeps core 0 and one worker relays on core 1 beside the generator;
    the page is measured idle and loaded with wrk in the same place, and, for information,
    with wrk on the other core. With rounds > 1 the pairs are measured in turn and the
    median ratio judged: the VM's speed drifts by a fifth within minutes."""
    workers = Workers(1, folder, "beside", core=RELAY_CORE)
    ratios = []
    try:
        for _ in range(rounds):
            measured = page_round(streams, clip, workers, window, dashboard, cookie, page_seconds, server, wrk_core)
            if measured is None:
                return
            ratio, idle = measured
            ratios.append(ratio)
        if rounds > 1:
            median = statistics.median(ratios)
            print(f"page over {rounds} rounds: p99 loaded / idle {', '.join(f'{r:.2f}' for r in ratios)}, median "
                  f"{median:.2f}x | {'PASS' if median <= PAGE_RATIO else 'FAIL'} (at most {PAGE_RATIO}x)", flush=True)
        # The machine's own drift: idle again, the streams gone, the worker still there.
        again = wrk(dashboard, cookie, page_seconds, wrk_core, server)
        print(f"idle again, wrk on core {wrk_core}: dashboard p99 {again['p99']:.2f} ms (before the streams "
              f"{idle['p99']:.2f} ms), preempted {again['preempted']:.0f} times/s | not judged, load "
              f"{seeding.load_average()}", flush=True)
        # The same with core 1 kept busy by a plain loop instead of the relay: how much a busy
        # neighbour core alone slows this VM's core 0, relay or not.
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=seeding.pinned(RELAY_CORE))
        try:
            beside_loop = wrk(dashboard, cookie, page_seconds, wrk_core, server)
        finally:
            spinner.kill()
            spinner.wait()
        line, _ = page_line(f"for information, core {RELAY_CORE} busy with a plain loop, no streams, wrk on core "
                            f"{wrk_core}", beside_loop, again)
        print(f"{line} | not judged, load {seeding.load_average()}", flush=True)
    finally:
        workers.stop()


def page_round(streams: int, clip, workers: Workers, window: float, dashboard: str, cookie: str, page_seconds: int,
               server: subprocess.Popen, wrk_core: int) -> tuple[float, dict] | None:
    """(loaded / idle p99 with wrk on wrk_core, the idle figures), or None when the relay
    did not carry the streams."""
    other_core = 1 - wrk_core
    session = WorkersSession(clip, workers.prefix, workers.pids)
    try:
        idle = {core: wrk(dashboard, cookie, page_seconds, core, server) for core in (wrk_core, other_core)}
        result, why, r = run_step(session, streams, 0, window)
        print(step_line(f"1 worker on core {RELAY_CORE}, for the page:", streams, result, why, r), flush=True)
        if result != "pass":
            # Only a load the worker carried at full frame rate, really offered, supports a claim.
            print(f"page beside the relay ({streams} streams): NO CLAIM (the relay step was {result.upper()})",
                  flush=True)
            return None
        loaded = {core: wrk(dashboard, cookie, page_seconds, core, server) for core in (wrk_core, other_core)}
    finally:
        session.close()
    line, ratio = page_line(f"page beside the relay ({streams} streams), wrk on core {wrk_core}",
                            loaded[wrk_core], idle[wrk_core])
    print(f"{line} | {'PASS' if ratio <= PAGE_RATIO else 'FAIL'} (at most {PAGE_RATIO}x), "
          f"load {seeding.load_average()}", flush=True)
    line, _ = page_line(f"for information, wrk on core {other_core}", loaded[other_core], idle[other_core])
    print(f"{line} | not judged", flush=True)
    return ratio, idle[wrk_core]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="worker counts to measure (default 1,2; '': the page only)")
    # Steps of 25 from 200: the same 2-core VM carried 425 streams on one worker on one day and 250 to 275
    # on another (a slower host), where steps of 50 from 300 measure nothing.
    parser.add_argument("--steps", default=",".join(str(n) for n in range(200, 525, 25)),
                        help="streams per step (default 200,225,...,500)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="the searches of every worker count, and the page's idle and loaded figures, this many "
                             "times in turn; more than one: growth and the page judged over the rounds (default 1)")
    parser.add_argument("--window", type=float, default=6.0, help="seconds per measured step (default 6)")
    parser.add_argument("--page-seconds", type=int, default=10, help="seconds of wrk per page figure (default 10)")
    parser.add_argument("--page-streams", type=int, default=60,
                        help="streams relayed beside the page on core 1 (default 60, where one process slowed "
                             "its dashboard from 17 to 130 ms p50); 0: no page figure")
    parser.add_argument("--wrk-core", type=int, choices=(0, 1), default=SERVER_CORE,
                        help="core of the judged wrk runs (default 0, the web instance's)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds: at least 1")
    print("$ python", " ".join(sys.argv), flush=True)
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk: apt-get install wrk")
    started = time.monotonic()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, generator on core {RELAY_CORE} at nice "
          f"{GENERATOR_NICE}, workers "
          f"unpinned, web instance on core {SERVER_CORE}; a step's limit: {CONNECT_SECONDS_PER_STREAM} s per new "
          f"stream + {relay_bench.SETTLE:.0f} s + window + {STEP_SPARE_SECONDS:.0f} s; load {seeding.load_average()}",
          flush=True)
    clip = relay_bench.encode_clip()
    steps = [int(step) for step in args.steps.split(",")]
    with tempfile.TemporaryDirectory(prefix="relay-workers-bench-") as folder:
        data = Path(folder)
        counts = [int(count) for count in args.workers.split(",") if count]
        rounds = []
        for _ in range(args.rounds if counts else 0):
            searches = {count: search(count, steps, clip, data, args.window) for count in counts}
            print(" | ".join(growth(searches)), flush=True)
            rounds.append(searches)
        if len(rounds) > 1:
            print(growth_over(rounds), flush=True)
        if args.page_streams:
            url = f"sqlite+aiosqlite:///{data / 'bench.sqlite3'}"
            people = seeding.run(seeding.seed(url))
            cookie = seeding.run(seeding.session_cookie(url, people.clinician))
            port = seeding.free_port()
            environment = seeding.server_environment(data, url, port, REDIS_URL=REDIS_URL, RELAY_WORKERS="yes",
                                                     REDIS_PREFIX=f"bench-{os.getpid()}-beside")
            server = seeding.start_server(environment, port, core=SERVER_CORE, log_path=data / "server.log")
            dashboard = f"http://127.0.0.1:{port}/p/{people.slug}/"
            try:
                pages.check_page(dashboard, cookie, "waiting-room")
                page_beside_relay(args.page_streams, clip, data, args.window, dashboard, cookie, args.page_seconds,
                                  server, args.wrk_core, args.rounds)
            finally:
                seeding.stop(server)
    print(f"{time.monotonic() - started:.0f} s, load {seeding.load_average()}", flush=True)


if __name__ == "__main__":
    main()
