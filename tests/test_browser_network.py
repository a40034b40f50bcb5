"""Chromium at home behind a symmetric NAT: the call page itself (static/call/) with the ICE
servers and TURN credentials of the server's `welcome`, each browser in its own home's
network namespace (tests/networks.py), the server and Debian's coturn on the internet."""

from __future__ import annotations

import asyncio
import stat
import time

import pytest

from tests.call_pages import enter_call, until_every_tile_plays
from tests.helpers import CHROMIUM, CHROMIUM_FLAGS, logged_in, needs_chromium
from tests.networks import IP, needs_namespaces

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
async def chromium_at_home(internet, call_across_nat, tmp_path):
    """Launches Chromium inside a home's namespace: Playwright talks to it over a pipe, which
    crosses namespaces. The server's address is not a secure origin (no TLS, not localhost),
    so Chromium is told to treat it as one, as it would an https:// server."""
    from playwright.async_api import async_playwright

    base, _ = call_across_nat
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


async def in_call(chromium_at_home, call_across_nat) -> dict[str, object]:
    """Erika at home 1 and Paul at home 2, each in the call in their own Chromium, seeing and
    hearing each other: their pages by name."""
    base, consultation = call_across_nat
    pages = {}
    for home, name in ((1, "erika"), (2, "paul")):
        page, _ = await logged_in(await chromium_at_home(home), base, name)
        await enter_call(page, base, consultation)
        pages[name.title()] = page
    await until_every_tile_plays(pages, within=60)
    for name, page in pages.items():
        assert await page.get_attribute("#call", "data-topology") == "p2p", name
    return pages


async def paths(page) -> list[dict]:
    return await page.evaluate(PATHS)


async def test_two_browsers_behind_symmetric_nat_talk_through_turn_also_after_a_line_drop(
        internet, chromium_at_home, call_across_nat):
    pages = await in_call(chromium_at_home, call_across_nat)
    for name, page in pages.items():
        [path] = await paths(page)
        assert "relay" in (path["local"], path["remote"]), f"{name}'s page is connected without TURN: {path}"

    # Erika's line drops for 5 s, and her router forgets its mappings.
    internet.cut(1)
    await asyncio.sleep(5)
    internet.restore(1)
    back = time.monotonic()
    await until_every_tile_plays(pages, within=10)
    print(f"frames again {time.monotonic() - back:.1f} s after the line came back; "
          f"paths: {[await paths(page) for page in pages.values()]}")


async def test_a_browser_without_udp_gets_through_turn_over_tcp(internet, chromium_at_home, call_across_nat):
    internet.block_udp(1)
    pages = await in_call(chromium_at_home, call_across_nat)
    [path] = await paths(pages["Erika"])
    assert path["local"] == "relay" and path["relayProtocol"] == "tcp", path
