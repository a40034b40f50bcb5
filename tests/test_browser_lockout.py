"""In real browsers, at desktop and phone size: a stranger who tries wrong passwords for a
patient's user name just before her appointment only slows himself down, with waits that
grow to fifteen minutes; the patient's own browser (OWASP's device cookie) gets in at
once, and a new phone of hers, from her own address, waits at most a stated minute."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from aiohttp.test_utils import unused_port

from smartpractice.accounts.throttle import ACCOUNT_BACKOFF
from smartpractice.keys import services_key
from tests.helpers import (
    DESKTOP,
    PASSWORD,
    PHONE,
    add_member,
    make_app,
    make_settings,
    needs_chromium,
)

pytestmark = needs_chromium


@pytest.fixture
async def behind_proxy(aiohttp_server, tmp_path, database_url, clock):
    """The app behind a trusted proxy on loopback, so that each browser can come from an
    address of its own (X-Forwarded-For), as the owner and the stranger do; on the test's
    clock, so that the stranger's waits pass when the test says, not the machine's load."""
    port = unused_port()
    settings = make_settings(tmp_path, database_url, BASE_URL=f"http://127.0.0.1:{port}",
                             TRUSTED_PROXIES="127.0.0.0/8")
    return await aiohttp_server(make_app(settings, clock=clock), port=port)


async def browser_from(browser, address: str, size: dict):
    context = await browser.new_context(locale="de-DE", extra_http_headers={"X-Forwarded-For": address}, **size)
    return await context.new_page()


async def log_in(page, base: str, password: str) -> None:
    await page.goto(base + "/login")
    await page.fill("#identifier", "erika")
    await page.fill("#password", password)
    await page.click("form[action='/login'] button[type=submit]")


async def told_to_wait(page) -> timedelta | None:
    """The wait the refused login's message states, if it states one."""
    alert = await page.inner_text("[role=alert]")
    if seconds := re.search(r"warten Sie (\d+) Sekunden?", alert):
        return timedelta(seconds=int(seconds[1]))
    if minutes := re.search(r"in (\d+) Minuten? erneut", alert):
        return timedelta(minutes=int(minutes[1]))
    return None


@pytest.mark.parametrize(("owner_size", "stranger_size"), [(PHONE, DESKTOP), (DESKTOP, PHONE)],
                         ids=["owner-phone", "owner-desktop"])
async def test_a_strangers_guesses_slow_only_him_down(behind_proxy, browser, clock, owner_size, stranger_size):
    services = behind_proxy.app[services_key]
    practice = (await services.practices.create("Praxis Lindenhof", admin_email="linde@example.org",
                                                admin_username="linde")).practice
    await add_member(behind_proxy.app, practice, "patient", "erika")
    base = str(behind_proxy.make_url("")).rstrip("/")

    owner = await browser_from(browser, "203.0.113.9", owner_size)
    await log_in(owner, base, PASSWORD)
    await owner.wait_for_url(f"**/p/{practice.slug}/")
    assert "sp_device" in {cookie["name"] for cookie in await owner.context.cookies()}
    await owner.click("header form[action='/logout'] button[type=submit]")

    # The stranger guesses on, waiting each time as long as he is told: 1 s, 2 s, 4 s, …
    stranger = await browser_from(browser, "198.51.100.7", stranger_size)
    waits: list[timedelta] = []
    while not waits or waits[-1] < timedelta(minutes=15):
        await log_in(stranger, base, "wrong-password-123")
        if (wait := await told_to_wait(stranger)) is not None:
            waits.append(wait)
            clock.advance(seconds=wait.total_seconds())
        assert len(waits) < 20, waits
    assert waits[:4] == [timedelta(seconds=s) for s in (1, 2, 4, 8)] and waits == sorted(waits)
    # Within his wait even the right password gets the form again, unchecked, with the wait.
    await log_in(stranger, base, "wrong-password-123")
    await log_in(stranger, base, PASSWORD)
    assert await told_to_wait(stranger) == timedelta(minutes=15)
    assert stranger.url.endswith("/login")

    # Her own browser, which logged in before, gets in at once, just before her appointment.
    await log_in(owner, base, PASSWORD)
    await owner.wait_for_url(f"**/p/{practice.slug}/")
    # A new phone of hers at her address: held at most a minute, told how long, then in.
    new_device = await browser_from(browser, "203.0.113.9", owner_size)
    await log_in(new_device, base, PASSWORD)
    held = await told_to_wait(new_device)
    assert held is not None and held <= ACCOUNT_BACKOFF.cap
    clock.advance(seconds=held.total_seconds())
    await log_in(new_device, base, PASSWORD)
    await new_device.wait_for_url(f"**/p/{practice.slug}/")
