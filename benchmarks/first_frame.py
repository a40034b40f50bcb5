"""First decoded video frame through the relay, after admission and after the switch to it.

    python benchmarks/first_frame.py                     # 10 trials of each, 1 to 4 minutes
    python benchmarks/first_frame.py --trials 20 --people 4

Participants are aiortc peers, each in its own process, connected as the browser client
connects (tests/group_peers.py: a publish connection, and a receive connection made afresh
whenever the publishers change). Their cameras (VP8, --fps frames a second, 30 as in a
browser) make a keyframe only when asked (PLI or FIR) or when their encoder starts, as a
browser's do. The relay runs in this process.

- admission: `--people` participants are in a relayed call; a new one is admitted and
  connects (publishes, then receives). Measured: from its publish offer to its first
  decoded frame of each publisher. Then it leaves; the next trial admits another.
- switch: `--people` participants whose processes run (their call is peer to peer) all
  move to the relay at once (a third person joining, or the direct path failing), each
  with fresh connections. Measured: from the moment of the switch to each one's first
  decoded frame of each other one. Then their relay connections end, and the next trial
  switches the same processes again.

A trial whose frames do not all arrive within --within seconds counts as failed and makes
the run INVALID. The relay's own share, from a receive connection coming up to the first
video packet forwarded on it (asking for and getting a keyframe), is printed beside it.
Not a test (tests keep generous bounds; docs/performance.md quotes runs).
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


def keyframe_waits(call: GroupCall, member: RemoteMember) -> list[float]:
    """The relay's side of it: seconds from the member's receive connection coming up to
    the first packet of each video forwarded on it (the wait for a keyframe)."""
    connection = call.room.participant(f"{member.name}/receive")
    return [f.first_packet_after for f in connection.forwards
            if f.source.kind == "video" and f.first_packet_after is not None]


class Samples:
    def __init__(self) -> None:
        self.first_frames: list[float] = []
        self.keyframe_waits: list[float] = []
        self.failures: list[str] = []


async def admissions(trials: int, people: int, fps: int, within: float) -> Samples:
    relay = Relay()
    call = GroupCall(relay.room("benchmark-admission"), fps=fps)
    samples = Samples()
    try:
        await call.join_together([f"p{i}" for i in range(people)])
        await call.until_everyone_receives_everyone()
        for trial in range(trials):
            [member] = await call.arrive([f"admitted{trial}"])
            since = time.monotonic()
            await call.enter([member])
            try:
                samples.first_frames += await first_frames(call, member, since, within)
                samples.keyframe_waits += keyframe_waits(call, member)
            except TimeoutError as error:
                samples.failures.append(str(error))
            await call.leave(member.name)
    finally:
        await call.close()
        await relay.close()
    return samples


async def switches(trials: int, people: int, fps: int, within: float) -> Samples:
    relay = Relay()
    call = GroupCall(relay.room("benchmark-switch-0"), fps=fps)
    samples = Samples()
    try:
        members = await call.arrive([f"p{i}" for i in range(people)])
        for trial in range(trials):
            since = time.monotonic()
            await call.enter(members)
            results = await asyncio.gather(*(first_frames(call, m, since, within) for m in members),
                                           return_exceptions=True)
            for member, result in zip(members, results, strict=True):
                if isinstance(result, BaseException):
                    samples.failures.append(str(result))
                else:
                    samples.first_frames += result
                    samples.keyframe_waits += keyframe_waits(call, member)
            await back_to_peer_to_peer(call, relay, f"benchmark-switch-{trial + 1}")
    finally:
        await call.close()
        await relay.close()
    return samples


async def back_to_peer_to_peer(call: GroupCall, relay: Relay, room: str) -> None:
    """Everyone's relay connections end (their processes, like open pages, stay), so the
    next switch starts from nothing on the relay again."""
    for member in call.members.values():
        await member.ask("drop")
        member.receiving = ""
    for connection in call.room.participant_ids:
        await call.room.detach(connection)
    call.room = relay.room(room)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def summary(name: str, samples: Samples, trials: int) -> str:
    first, waits = samples.first_frames, samples.keyframe_waits
    if len(first) < 2 or len(waits) < 2:
        return f"{name}: INVALID, {len(first)} first frames; " + "; ".join(samples.failures)
    verdict = "INVALID: " + "; ".join(samples.failures) if samples.failures else (
        f"target p95 <= {TARGET_P95:.1f} s {'met' if p95(first) <= TARGET_P95 else 'MISSED'}")
    return (f"{name}: {len(first)} first frames in {trials} trials: p50 {statistics.median(first):.2f} s, "
            f"p95 {p95(first):.2f} s, max {max(first):.2f} s; the relay's wait for a keyframe once connected "
            f"p50 {statistics.median(waits):.2f} s, p95 {p95(waits):.2f} s; {verdict}")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--people", type=int, default=3, help="in the call before an admission; moving to the relay")
    parser.add_argument("--fps", type=int, default=30, help="the cameras' frame rate")
    parser.add_argument("--within", type=float, default=15.0, help="seconds a trial may take to see every frame")
    parser.add_argument("--only", choices=["admission", "switch"])
    options = parser.parse_args()
    print("$ python " + " ".join(sys.argv))
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average {load()}; {os.cpu_count()} CPUs; "
          f"Python {sys.version.split()[0]}, aiortc {aiortc.__version__}")
    if options.only != "switch":
        samples = await admissions(options.trials, options.people, options.fps, options.within)
        print(summary(f"admission ({options.people} publishers)", samples, options.trials)
              + f"; load {load()}")
    if options.only != "admission":
        samples = await switches(options.trials, options.people, options.fps, options.within)
        print(summary(f"switch to the relay ({options.people} people)", samples, options.trials)
              + f"; load {load()}")


if __name__ == "__main__":
    asyncio.run(main())
