"""Browsers at home behind a symmetric NAT: the call page itself (static/call/) with the ICE
servers and TURN credentials of the server's `welcome`, each browser in its own home's
network namespace (tests/networks.py), the server and Debian's coturn on the internet.
Chromium with Chromium and Firefox with Chromium peer to peer through TURN, playing again
within 10 s after a home's line drops for 5 s (see LINE_DROPS for which);
TURN over TCP; and three people, each at home behind their own NAT, through a relay worker
that runs on the internet, playing again within 10 s after one home's line drops for 5 s."""

from __future__ import annotations

import asyncio
import contextlib
import stat
import time

import pytest

from smartpractice.rooms import relay_registry as registry
from smartpractice.rooms.redis_state import connect
from tests.call_pages import enter_call, tiles, until_every_tile_plays
from tests.firefox_pages import CALL_PREFS, Firefox, needs_firefox
from tests.helpers import CHROMIUM, CHROMIUM_FLAGS, logged_in, needs_chromium
from tests.networks import HOMES, IP, PORT, SERVER, needs_namespaces
from tests.redis_rooms import REDIS_URL

pytestmark = [needs_chromium, needs_namespaces]

# The selected candidate pair of each connection of the page, by candidate type.
PATHS = """async () => {
  const paths = [];
  for (const pc of window.smartpracticeCall.connections()) {
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const pair = stats.get(s.selectedCandidatePairId);
        const local = stats.get(pair.localCandidateId), remote = stats.get(pair.remoteCandidateId);
        paths.push({local: local.candidateType, remote: remote.candidateType,
                    relayProtocol: local.relayProtocol || null});
      }
    });
  }
  return paths;
}"""


@pytest.fixture
async def chromium_at_home(internet, tmp_path):
    """Launches Chromium inside a home's namespace: Playwright talks to it over a pipe, which
    crosses namespaces. The server's address is not a secure origin (no TLS, not localhost),
    so Chromium is told to treat it as one, as it would an https:// server."""
    from playwright.async_api import async_playwright

    base = f"http://{SERVER}:{PORT}"
    async with async_playwright() as playwright:
        browsers = []

        async def launch(home: int):  # noqa: ANN202
            wrapper = tmp_path / f"chromium-home{home}"
            wrapper.write_text(f'#!/bin/sh\nexec {IP} netns exec {internet.namespace(f"home{home}")} {CHROMIUM} "$@"\n')
            wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
            browser = await playwright.chromium.launch(
                executable_path=str(wrapper),
                args=[*CHROMIUM_FLAGS, f"--unsafely-treat-insecure-origin-as-secure={base}"])
            browsers.append(browser)
            return browser

        try:
            yield launch
        finally:
            for browser in browsers:
                await browser.close()


@pytest.fixture
async def firefox_at_home(internet):
    """Launches Firefox inside a home's namespace. Its bridge (tests/firefox/bridge.mjs)
    runs there too, so that puppeteer reaches Firefox's WebDriver BiDi port on that
    namespace's loopback; the test talks to the bridge over pipes. The server's address is
    not a secure origin, so Firefox is told to treat it as one (else the page has no
    `navigator.mediaDevices`), as it would an https:// server. A page of such an origin
    that posts a form to its own http:// address then counts as a secure page sending to
    an insecure one: Firefox tries the post over https:// and holds the plain one behind a
    warning page that waits for a click (the login timed out on it); as the post does go
    to the same server, the warning is turned off."""
    async with contextlib.AsyncExitStack() as running:
        async def launch(home: int) -> Firefox:
            prefs = {**CALL_PREFS, "dom.securecontext.allowlist": SERVER,
                     "security.warn_submit_secure_to_insecure": False}
            return await running.enter_async_context(Firefox.launched(prefs, inside=internet.command_in(f"home{home}")))

        yield launch


async def in_call(base: str, consultation: int, browsers: dict[str, object], *,
                  topology: str = "p2p") -> dict[str, object]:
    """Each person (user name: the browser at their home) in the call, seeing and hearing
    every other one: their pages by name."""
    pages = {}
    for name, browser in browsers.items():
        page, _ = await logged_in(browser, base, name)
        await enter_call(page, base, consultation)
        pages[name.title()] = page
    for page in pages.values():
        await page.wait_for_selector(f"#call[data-topology={topology}]", timeout=60_000)
    await until_every_tile_plays(pages, within=90 if topology == "relay" else 60)
    return pages


async def chromium_call(chromium_at_home, call_across_nat) -> dict[str, object]:
    """Erika at home 1 and Paul at home 2, each in their own Chromium."""
    base, consultation = call_across_nat
    return await in_call(base, consultation, {"erika": await chromium_at_home(1), "paul": await chromium_at_home(2)})


def assert_through_turn(shown: dict[str, dict]) -> None:
    """One connection per page, and the pair it sends on has a TURN relay candidate at one
    end (the homes' symmetric NATs leave no other way)."""
    for name, result in shown.items():
        assert len(result["pairs"]) == 1, f"{name}'s page has {len(result['pairs'])} connections: {result['pairs']}"
        [pair] = result["pairs"]
        assert "relay" in (pair["localType"], pair["remoteType"]), f"{name}'s page is connected without TURN: {pair}"


def assert_at_the_worker(shown: dict[str, dict]) -> None:
    """Each page sends and receives on two connections, both ending at an address on the
    internet (the relay worker's own or coturn's relay), none at another home."""
    internet_addresses = {SERVER, *(f"100.64.{home}.1" for home in HOMES)}
    for name, result in shown.items():
        assert len(result["pairs"]) == 2, f"{name}'s page: {result['pairs']}"
        for pair in result["pairs"]:
            assert pair["remoteAddress"] in internet_addresses, (
                f"{name}'s page sends to {pair['remoteAddress']}, not to the relay worker: {pair}")


async def paths(page) -> list[dict]:
    return await page.evaluate(PATHS)


# Who sits in which browser, and whose line drops (Erika is at home 1, Paul at home 2):
# Chromium with Chromium, and Firefox with Chromium at either home.
LINE_DROPS = [
    pytest.param({"erika": "chromium", "paul": "chromium"}, "erika", id="chromium-chromium-erika-drops"),
    pytest.param({"erika": "firefox", "paul": "chromium"}, "erika", id="firefox-drops-chromium-stays",
                 marks=[needs_firefox]),
    pytest.param({"erika": "firefox", "paul": "chromium"}, "paul", id="chromium-drops-firefox-stays",
                 marks=[needs_firefox]),
]


@pytest.mark.parametrize(("browsers", "drops"), LINE_DROPS)
async def test_two_browsers_behind_symmetric_nat_talk_through_turn_and_play_again_within_10_s_of_a_line_drop(
        internet, chromium_at_home, firefox_at_home, call_across_nat, browsers, drops):
    """Both pages play each other's tile through TURN; then one home's line drops for 5 s and
    its router forgets its NAT mappings, which kills that browser's TURN allocation and its
    signalling socket without either noticing. Within 10 s of the line's return, each page
    plays the other's video and sound again, through TURN.

    Before the call page probed its socket and restarted ICE on `disconnected`
    (docs/signalling.md, "After a dropped line"), Chromium found its path again by itself,
    but Firefox, whose line dropped, stayed `disconnected` until its ICE consent ran out:
    `failed` 21.5 s after the line came back, every tile playing again 23.5 s after it, once
    the restart's offer had shown its socket dead."""
    base, consultation = call_across_nat
    homes = {"erika": 1, "paul": 2}
    launch = {"chromium": chromium_at_home, "firefox": firefox_at_home}
    pages = await in_call(base, consultation, {name: await launch[kind](homes[name])
                                               for name, kind in browsers.items()})
    assert_through_turn({name: await tiles(page) for name, page in pages.items()})

    internet.cut(homes[drops])
    await asyncio.sleep(5)
    internet.restore(homes[drops])
    back = time.monotonic()
    shown = await until_every_tile_plays(pages, within=10)
    print(f"{' and '.join(f'{name} in {kind}' for name, kind in browsers.items())}, {drops}'s line dropped: "
          f"every tile played again {time.monotonic() - back:.1f} s after the line came back")
    assert_through_turn(shown)


async def test_a_browser_without_udp_gets_through_turn_over_tcp(internet, chromium_at_home, call_across_nat):
    internet.block_udp(1)
    pages = await chromium_call(chromium_at_home, call_across_nat)
    [path] = await paths(pages["Erika"])
    assert path["local"] == "relay" and path["relayProtocol"] == "tcp", path


@needs_firefox
async def test_three_homes_behind_symmetric_nat_through_a_relay_worker_on_the_internet(
        chromium_at_home, firefox_at_home, relayed_call_across_nat):
    """Erika (Chromium, home 1), Paul (Firefox, home 2) and Oma (Chromium, home 3), each
    behind their own router's NAT; the relay is a `smartpractice relay-worker` process on
    the internet, which they reach only across their NATs. Every page plays each of the two
    others' video and sound, and each of its connections ends at the worker (an address on
    the internet, its own or coturn's relay), none at another home."""
    base, consultation, worker, prefix = relayed_call_across_nat
    pages = await in_call(base, consultation, {"erika": await chromium_at_home(1), "paul": await firefox_at_home(2),
                                               "oma": await chromium_at_home(3)}, topology="relay")
    redis = connect(REDIS_URL)
    try:
        placed = await redis.get(registry.key(prefix, "placement", consultation))
    finally:
        await redis.aclose()
    assert placed and placed.decode() == worker, f"the call is not on the worker on the internet: {placed}"
    assert_at_the_worker(await until_every_tile_plays(pages, within=30))


async def test_three_homes_through_a_relay_worker_play_again_within_10_s_of_a_line_drop(
        internet, chromium_at_home, relayed_call_across_nat):
    """Erika, Paul and Oma, each in Chromium at a home of their own, talk through the relay
    worker on the internet; then Erika's line drops for 5 s and her router forgets its NAT
    mappings, which kills her connections to the relay (or coturn) and her signalling socket
    without her page noticing. Within 10 s of the line's return, every page plays each of the
    two others' video and sound again, still through the worker: the page replaces a relay
    connection that stays `disconnected` (relay.js) and a socket that does not answer
    (protocol.js), docs/signalling.md, "After a dropped line"."""
    base, consultation, _, _ = relayed_call_across_nat
    homes = {"erika": 1, "paul": 2, "oma": 3}
    pages = await in_call(base, consultation, {name: await chromium_at_home(home) for name, home in homes.items()},
                          topology="relay")
    assert_at_the_worker(await until_every_tile_plays(pages, within=30))

    internet.cut(homes["erika"])
    await asyncio.sleep(5)
    internet.restore(homes["erika"])
    back = time.monotonic()
    shown = await until_every_tile_plays(pages, within=10)
    print(f"three Chromium pages through the relay worker, Erika's line dropped for 5 s: "
          f"every tile of every page played again {time.monotonic() - back:.1f} s after the line came back")
    assert_at_the_worker(shown)
