"""Firefox for the browser tests: Debian's firefox-esr, driven over WebDriver BiDi by
puppeteer-core in a Node process (tests/firefox/bridge.mjs). Playwright's Firefox needs a
patched build of its own that cannot be downloaded here.

The classes copy the small part of Playwright's page API that the call tests use (goto,
fill, click, wait_for_selector, wait_for_url, evaluate, ...), so the same helpers (logging
in, entering the call, the per-tile media check) drive a Firefox page and a Chromium page
alike."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

FIREFOX = shutil.which("firefox-esr") or "/usr/bin/firefox-esr"
BRIDGE = Path(__file__).parent / "firefox" / "bridge.mjs"
PUPPETEER = Path(__file__).parent / "firefox" / "node_modules" / "puppeteer-core"

# A call's prefs: a synthetic camera and microphone, and a real grant of both, as a user
# gives it. (media.navigator.permission.disabled would grant too, but Firefox then hides
# its addresses behind mDNS names as it does for a user who refused: a case of its own.)
CALL_PREFS = {
    "media.navigator.streams.fake": True,
    "permissions.default.camera": 1,
    "permissions.default.microphone": 1,
    "media.autoplay.default": 0,
    "intl.accept_languages": "de-DE,de",
}
# Sharing a screen: Firefox asks for it in a picker of its own, which no pref answers (a
# "screen" permission of 1 still leaves getDisplayMedia waiting for it); only
# media.navigator.permission.disabled skips it, taking the first screen. That pref also hides
# the host addresses behind mDNS names, which the second pref turns off again.
SCREEN_PREFS = {
    **CALL_PREFS,
    "media.navigator.permission.disabled": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
}
# A user who answers "block" when the page asks for camera and microphone.
REFUSING_PREFS = {**CALL_PREFS, "permissions.default.camera": 2, "permissions.default.microphone": 2}

XVFB = shutil.which("Xvfb")
needs_xvfb = pytest.mark.skipif(
    not XVFB, reason="needs Xvfb (`apt-get install xvfb`) for a screen Firefox can share; .ci/run installs it")

needs_firefox = pytest.mark.skipif(
    not (Path(FIREFOX).exists() and PUPPETEER.exists() and shutil.which("node")),
    reason="needs firefox-esr (`apt-get install firefox-esr`) and puppeteer-core "
           "(`npm ci --prefix tests/firefox`); .ci/run installs both",
)

TIMEOUT_MS = 30_000


def _url_pattern(glob: str) -> re.Pattern[str]:
    """Playwright's URL glob: `**` is anything, `*` anything but a slash."""
    parts = (".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part)
             for part in re.split(r"(\*\*|\*)", glob))
    return re.compile("".join(parts) + "$")


class Firefox:
    """One firefox-esr process with its bridge."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._error_handlers: dict[str, Callable[[str], None]] = {}
        self._reader: asyncio.Task | None = None
        self.ready: asyncio.Future = asyncio.get_running_loop().create_future()

    @classmethod
    @contextlib.asynccontextmanager
    async def launched(cls, prefs: dict | None = None, display: str | None = None, *,
                       inside: Sequence[str] = ()) -> AsyncIterator[Firefox]:
        """Headless, or with `display` (an X display such as ":5") in a window there.
        `inside`: a command prefix the bridge runs under, e.g. `ip netns exec NAME` for a
        Firefox at home behind NAT (tests/networks.py). The bridge and Firefox then share
        that namespace: puppeteer reaches Firefox's WebDriver BiDi port on the namespace's
        own loopback, and the Python side talks to the bridge over its pipes, which cross
        namespaces."""
        options = json.dumps({"executablePath": FIREFOX, "prefs": prefs or CALL_PREFS, "headless": display is None})
        env = None if display is None else {**os.environ, "DISPLAY": display, "MOZ_ENABLE_WAYLAND": "0"}
        process = await asyncio.create_subprocess_exec(
            *inside, shutil.which("node") or "node", str(BRIDGE), options, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**24)
        firefox = cls(process)
        firefox._reader = asyncio.create_task(firefox._read())
        try:
            async with asyncio.timeout(60):
                await firefox.ready
            yield firefox
        finally:
            process.stdin.close()  # the bridge closes Firefox and exits
            try:
                async with asyncio.timeout(20):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
            firefox._reader.cancel()

    async def _read(self) -> None:
        while line := await self._process.stdout.readline():
            message = json.loads(line)
            if message.get("event") == "ready":
                self.ready.set_result(message["version"])
            elif message.get("event") == "pageerror":
                handler = self._error_handlers.get(message["page"])
                if handler:
                    handler(message["message"])
            elif (future := self._waiting.pop(message["id"], None)) and not future.done():
                if "error" in message:
                    future.set_exception(AssertionError(f"Firefox: {message['error']}"))
                else:
                    future.set_result(message["result"])
        gone = ConnectionError("the Firefox bridge has exited")
        if not self.ready.done():
            self.ready.set_exception(gone)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(gone)

    async def call(self, op: str, **fields):
        request_id = next(self._ids)
        future = self._waiting[request_id] = asyncio.get_running_loop().create_future()
        self._process.stdin.write(json.dumps({"id": request_id, "op": op, **fields}).encode() + b"\n")
        await self._process.stdin.drain()
        try:
            async with asyncio.timeout(TIMEOUT_MS / 1000 + 30):
                return await future
        except TimeoutError:
            raise AssertionError(f"Firefox did not answer {op} {fields.get('page', '')} "
                                 f"within {TIMEOUT_MS / 1000 + 30:.0f} s") from None

    async def new_context(self, **_playwright_options) -> FirefoxContext:
        """A context of its own cookies (a WebDriver BiDi user context); the language
        comes from the prefs."""
        return FirefoxContext(self, await self.call("newContext"))


class FirefoxContext:
    def __init__(self, firefox: Firefox, context_id: str) -> None:
        self.firefox = firefox
        self.id = context_id

    async def new_page(self) -> FirefoxPage:
        page_id = await self.firefox.call("newPage", context=self.id)
        return FirefoxPage(self, page_id)

    async def add_init_script(self, script: str) -> None:
        await self.firefox.call("addInitScript", context=self.id, source=script)


class FirefoxPage:
    def __init__(self, context: FirefoxContext, page_id: str) -> None:
        self.context = context
        self.id = page_id
        self._call = context.firefox.call
        self._firefox = context.firefox

    def on(self, event: str, handler: Callable[[str], None]) -> None:
        assert event == "pageerror", event
        self._firefox._error_handlers[self.id] = handler

    async def goto(self, url: str) -> None:
        await self._call("goto", page=self.id, url=url)

    async def evaluate(self, source: str, arg=None):
        return await self._call("evaluate", page=self.id, source=source, arg=arg)

    # `timeout` in milliseconds, as Playwright's.
    async def wait_for_selector(self, selector: str, timeout: float = TIMEOUT_MS) -> None:  # noqa: ASYNC109
        await self._call("waitForSelector", page=self.id, selector=selector, timeout=timeout)

    async def wait_for_url(self, glob: str, timeout: float = TIMEOUT_MS) -> None:  # noqa: ASYNC109
        pattern = _url_pattern(glob)
        async with asyncio.timeout(timeout / 1000):
            while not pattern.match(await self.evaluate("location.href")):  # noqa: ASYNC110 - the page is in Firefox
                await asyncio.sleep(0.1)

    async def click(self, selector: str) -> None:
        await self._call("click", page=self.id, selector=selector, timeout=TIMEOUT_MS)

    async def fill(self, selector: str, value: str) -> None:
        await self._call("fill", page=self.id, selector=selector, value=value, timeout=TIMEOUT_MS)

    async def get_attribute(self, selector: str, name: str) -> str | None:
        return await self.evaluate("([s, n]) => document.querySelector(s).getAttribute(n)", [selector, name])

    async def inner_text(self, selector: str) -> str:
        return await self.evaluate("(s) => document.querySelector(s).innerText", selector)


@contextlib.asynccontextmanager
async def virtual_display(width: int = 1280, height: int = 720) -> AsyncIterator[str]:
    """An Xvfb X server of `width` x `height` on a free display number (Xvfb picks it and
    writes it to the pipe): a screen for Firefox to share, with nothing on it but Firefox's
    own window."""
    read, write = os.pipe()
    process = await asyncio.create_subprocess_exec(
        XVFB or "Xvfb", "-displayfd", str(write), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp",
        pass_fds=(write,), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    os.close(write)
    try:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(30):
            number = (await loop.run_in_executor(None, os.read, read, 16)).decode().strip()
        assert number, "Xvfb did not start"
        yield f":{number}"
    finally:
        os.close(read)
        process.terminate()
        await process.wait()
