"""First decoded video frame through the relay, after admission and after the switch to it.

    python benchmarks/first_frame.py                     # 12 trials of each, about 3 minutes
    python benchmarks/first_frame.py --trials 20 --people 4

Participants are aiortc peers, each in its own process, connected as the browser client
connects (tests/group_peers.py: a publish connection, and a receive connection made afresh
whenever the publishers change). Their cameras (VP8, 10 fps) make a keyframe only when
asked (PLI or FIR) or when their encoder starts, as a browser's do. The relay runs in
this process.

- admission: `--people` participants are in a relayed call; a new one is admitted and
  connects (publishes, then receives). Measured: from its publish offer to its first
  decoded frame of each publisher. Then it leaves; the next trial admits another.
- switch: `--people` participants whose processes run (their call is peer to peer) all
  move to the relay at once (a third person joining, or the direct path failing), each
  with fresh connections. Measured: from the moment of the switch to each one's first
  decoded frame of each other one.

A trial whose frames do not all arrive within --within seconds counts as failed and makes
the run INVALID. Not a test (tests keep generous bounds; docs/performance.md quotes runs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiortc  # noqa: E402

from smartpractice.rtc import Relay  # noqa: E402
from tests.group_peers import GroupCall, RemoteMember  # noqa: E402

TARGET_P95 = 1.0  # seconds (issue 12)


async def first_frames(call: GroupCall, member: RemoteMember, since: float, within: float) -> list[float]:
    """Seconds from `since` to the member's first decoded frame of each other publisher's video."""
    wanted = {m.name for m in call.publishers(member) if m.video}
    deadline = time.monotonic() + within
    while True:
        counts = await member.ask("counts")
        seen = {publisher: first for publisher, offered, first in counts["first_frames"] if offered >= since}
        if wanted <= seen.keys():
            return [seen[name] - since for name in sorted(wanted)]
        if time.monotonic() > deadline:
            missing = ", ".join(sorted(wanted - seen.keys()))
            raise TimeoutError(f"{member.name} saw no frame of {missing} within {within:.0f} s")
        await asyncio.sleep(0.05)


async def admissions(trials: int, people: int, within: float) -> tuple[list[float], list[str]]:
    relay = Relay()
    call = GroupCall(relay.room("benchmark-admission"))
    samples, failures = [], []
    try:
        await call.join_together([f"p{i}" for i in range(people)])
        await call.until_everyone_receives_everyone()
        for trial in range(trials):
            [member] = await call.arrive([f"admitted{trial}"])
            since = time.monotonic()
            await call.enter([member])
            try:
                samples += await first_frames(call, member, since, within)
            except TimeoutError as error:
                failures.append(str(error))
            await call.leave(member.name)
    finally:
        await call.close()
        await relay.close()
    return samples, failures


async def switches(trials: int, people: int, within: float) -> tuple[list[float], list[str]]:
    samples, failures = [], []
    for trial in range(trials):
        relay = Relay()
        call = GroupCall(relay.room(f"benchmark-switch-{trial}"))
        try:
            members = await call.arrive([f"p{i}" for i in range(people)])
            since = time.monotonic()
            await call.enter(members)
            results = await asyncio.gather(*(first_frames(call, m, since, within) for m in members),
                                           return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    failures.append(str(result))
                else:
                    samples += result
        finally:
            await call.close()
            await relay.close()
    return samples, failures


def summary(name: str, samples: list[float], failures: list[str], trials: int) -> str:
    if len(samples) < 2:
        return f"{name}: INVALID, {len(samples)} first frames; " + "; ".join(failures)
    p95 = statistics.quantiles(samples, n=20, method="inclusive")[18]
    verdict = "INVALID: " + "; ".join(failures) if failures else (
        f"target p95 <= {TARGET_P95:.1f} s {'met' if p95 <= TARGET_P95 else 'MISSED'}")
    return (f"{name}: {len(samples)} first frames in {trials} trials: p50 {statistics.median(samples):.2f} s, "
            f"p95 {p95:.2f} s, max {max(samples):.2f} s; {verdict}")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--people", type=int, default=3, help="in the call before an admission; moving to the relay")
    parser.add_argument("--within", type=float, default=15.0, help="seconds a trial may take to see every frame")
    parser.add_argument("--only", choices=["admission", "switch"])
    options = parser.parse_args()
    print("$ python " + " ".join(sys.argv))
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average {load()}; {os.cpu_count()} CPUs; "
          f"Python {sys.version.split()[0]}, aiortc {aiortc.__version__}")
    if options.only != "switch":
        samples, failures = await admissions(options.trials, options.people, options.within)
        print(summary(f"admission ({options.people} publishers)", samples, failures, options.trials)
              + f"; load {load()}")
    if options.only != "admission":
        samples, failures = await switches(options.trials, options.people, options.within)
        print(summary(f"switch to the relay ({options.people} people)", samples, failures, options.trials)
              + f"; load {load()}")


if __name__ == "__main__":
    asyncio.run(main())
