"""The browsers' CPU per participant with end-to-end encryption on and off, in one run.

    python benchmarks/e2ee_cpu.py                        # 3 rounds of both, 30 s windows; ~6 min
    python benchmarks/e2ee_cpu.py --rounds 1 --window 5  # a smoke run

Two headless Chromium browsers, one per participant (each its own process tree: browser,
renderer, GPU and utility processes), in a peer-to-peer call through this process's
server, with the synthetic camera (640x480) and microphone. Each round runs the call twice,
in turns: "off" (both pages without encoded transforms, as a browser that cannot encrypt;
the practice allows transport encryption only) and "on" (every frame sealed and opened in
the transform worker, docs/e2ee.md). Once every tile plays, and a few seconds later, each
browser's CPU (user + system of every process in its tree, from /proc) is read over the same
window, with the frames each page decoded in it.

A window is INVALID when anything else on the machine used more than --others cores in it
(all CPU time from /proc/stat, less the two browsers, this process and its children), or
when the two modes' decoded frame rates differ by more than 10 % (then the CPU compares
unlike work); no figure is compared from it. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp.test_utils import TestServer, unused_port  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402

from smartpractice.storage.engine import upgrade  # noqa: E402
from tests.call_pages import DOCTOR, PATIENT, enter_call, tiles, until_every_tile_plays  # noqa: E402
from tests.helpers import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_FLAGS,
    cheap_passwords,
    consultation_at_lindenhof,
    logged_in,
    make_settings,
)

TICKS = os.sysconf("SC_CLK_TCK")
# A browser that cannot encrypt (tests/test_browser_e2ee.py's NO_TRANSFORMS).
NO_TRANSFORMS = """(() => {
  delete window.RTCRtpScriptTransform;
  delete RTCRtpSender.prototype.createEncodedStreams;
  delete RTCRtpReceiver.prototype.createEncodedStreams;
})()"""


def _children() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            found.setdefault(parent, []).append(int(entry))
    return found


def tree(root: int) -> list[int]:
    children, pending, found = _children(), [root], []
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending += children.get(pid, [])
    return found


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """user + system seconds of each live process (not of its reaped children)."""
    seconds = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / TICKS
    return seconds


def machine_busy_seconds() -> float:
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / TICKS


def chromium_roots() -> set[int]:
    """The browser processes (not renderers or helpers) among this process's descendants:
    Playwright's driver starts them, and other people's browsers on the machine are not ours."""
    roots = set()
    for pid in tree(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                words = cmdline.read().split(b"\0")
        except OSError:
            continue
        if words and words[0].endswith((b"chromium", b"chrome")) and not any(w.startswith(b"--type=") for w in words):
            roots.add(pid)
    return roots


async def launch(playwright) -> tuple[object, int]:  # noqa: ANN001
    """A Chromium of its own and the process id at the root of its tree."""
    before = chromium_roots()
    browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    found = chromium_roots() - before
    if len(found) != 1:
        raise RuntimeError(f"cannot tell the new browser's process among {sorted(found)}")
    return browser, found.pop()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def frames_decoded(page) -> int:  # noqa: ANN001
    return sum(tile["video"]["count"] for tile in (await tiles(page))["tiles"] if tile["video"])


async def one_window(mode: str, browsers: dict, roots: dict, base: str, app, consultation_id: int,  # noqa: ANN001
                     window: float) -> dict:
    pages = {}
    for name, username in ((DOCTOR, "dr-sommer"), (PATIENT, "erika")):
        page, _ = await logged_in(browsers[name], base, username, app if name == DOCTOR else None)
        if mode == "off":
            await page.context.add_init_script(NO_TRANSFORMS)
        await enter_call(page, base, consultation_id)
        pages[name] = page
    try:
        await until_every_tile_plays(pages)
        for page in pages.values():
            shown = await page.get_attribute("#e2ee", "data-mode")
            if shown != ("e2ee" if mode == "on" else "transport"):
                raise RuntimeError(f"the page says {shown!r} in mode {mode}")
        await asyncio.sleep(3)
        trees = {name: tree(root) for name, root in roots.items()}
        # This process's tree holds Playwright's driver and, below it, the browsers.
        browser_pids = {pid for pids in trees.values() for pid in pids}
        own = [pid for pid in tree(os.getpid()) if pid not in browser_pids]
        frames0 = {name: await frames_decoded(page) for name, page in pages.items()}
        cpu0 = {name: cpu_seconds(pids) for name, pids in trees.items()}
        own0, busy0, t0 = cpu_seconds(own), machine_busy_seconds(), time.monotonic()
        await asyncio.sleep(window)
        cpu1 = {name: cpu_seconds(tree(roots[name])) for name in roots}
        browser_pids |= {pid for name in roots for pid in cpu1[name]}
        own1 = cpu_seconds([pid for pid in tree(os.getpid()) if pid not in browser_pids])
        busy1, t1 = machine_busy_seconds(), time.monotonic()
        frames1 = {name: await frames_decoded(page) for name, page in pages.items()}
        elapsed = t1 - t0
        used = {name: sum(v - cpu0[name].get(pid, 0.0) for pid, v in cpu1[name].items()) / elapsed for name in roots}
        ours = sum(v - own0.get(pid, 0.0) for pid, v in own1.items()) / elapsed
        return {"cores": used, "others": (busy1 - busy0) / elapsed - sum(used.values()) - ours,
                "server": ours, "fps": {name: (frames1[name] - frames0[name]) / elapsed for name in pages}}
    finally:
        for page in pages.values():
            await page.click("#hang-up")
            await page.context.close()
        await asyncio.sleep(2)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured per mode and round")
    parser.add_argument("--others", type=float, default=0.2, help="cores anything else may use in a window")
    options = parser.parse_args()
    print("$ python " + " ".join(sys.argv))
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average {load()}; {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as data:
        url = f"sqlite+aiosqlite:///{data}/benchmark.sqlite3"
        await upgrade(url)
        port = unused_port()
        from smartpractice.app import create_app

        app = create_app(make_settings(Path(data), url, BASE_URL=f"http://127.0.0.1:{port}"),
                         passwords=cheap_passwords())
        server = TestServer(app, port=port)
        await server.start_server()
        async with async_playwright() as playwright:
            browsers, roots = {}, {}
            for name in (DOCTOR, PATIENT):
                browsers[name], roots[name] = await launch(playwright)
            print(f"Chromium {browsers[DOCTOR].version}, one per participant", flush=True)
            try:
                app, _, consultation, base = await consultation_at_lindenhof(server, e2ee_policy="allow_transport")
                results: dict[str, list[dict]] = {"off": [], "on": []}
                for round_ in range(1, options.rounds + 1):
                    for mode in ("off", "on") if round_ % 2 else ("on", "off"):
                        r = await one_window(mode, browsers, roots, base, app, consultation.id, options.window)
                        r["invalid"] = r["others"] > options.others and f"others used {r['others']:.2f} cores"
                        results[mode].append(r)
                        print(f"round {round_} e2ee {mode:3}: " + ", ".join(
                            f"{name} {r['cores'][name]:.2f} cores ({r['fps'][name]:.1f} fps decoded)" for name in roots)
                            + f" | server {r['server']:.2f}, others {r['others']:.2f} cores | load {load()}"
                            + (f" | INVALID: {r['invalid']}" if r["invalid"] else ""), flush=True)
                report(results)
            finally:
                for browser in browsers.values():
                    await browser.close()
        await server.close()
    print(f"load average {load()}")


def report(results: dict[str, list[dict]]) -> None:
    pairs = [(off, on) for off, on in zip(results["off"], results["on"], strict=True)
             if not off["invalid"] and not on["invalid"]]
    unlike = [(off, on) for off, on in pairs
              if any(abs(on["fps"][n] - off["fps"][n]) > 0.1 * max(off["fps"][n], 1) for n in off["fps"])]
    if unlike:
        print(f"{len(unlike)} round(s) INVALID: the decoded frame rates differ by more than 10 % between modes")
    pairs = [p for p in pairs if p not in unlike]
    if not pairs:
        print("RESULT: INVALID, no round with both modes valid")
        return
    for name in pairs[0][0]["cores"]:
        off = sum(p[0]["cores"][name] for p in pairs) / len(pairs)
        on = sum(p[1]["cores"][name] for p in pairs) / len(pairs)
        print(f"RESULT {name}: {off:.3f} cores without, {on:.3f} with end-to-end encryption "
              f"(+{on - off:.3f} cores, {100 * (on - off) / off:+.0f} %), over {len(pairs)} valid round(s)")


if __name__ == "__main__":
    asyncio.run(main())
