"""In a real browser: a new practice signs up, confirms by mail, sets up its app, reaches its dashboard."""

from __future__ import annotations

import re

import pyotp

from tests.helpers import mail_text, needs_chromium

pytestmark = needs_chromium

PASSWORD = "Kiefernzapfen-Wanderweg-Nebel"


async def test_new_practice_from_sign_up_through_two_factor_setup_to_its_dashboard(live_server, browser, smtp, tmp_path):
    base = str(live_server.make_url("")).rstrip("/")
    page = await browser.new_page(locale="de-DE")
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    await page.goto(base + "/pricing")
    assert "Gemeinschaftspraxis" in await page.inner_text("#prices")
    await page.click("a[href='/signup']")
    await page.fill("#practice_name", "Hausarztpraxis Birke")
    await page.select_option("#kind", "group")
    await page.fill("#address", "Birkenweg 3, 12345 Musterstadt")
    await page.fill("#contact", "030 555 0101")
    await page.fill("#admin_name", "Dr. Birke")
    await page.fill("#email", "birke@example.org")
    await page.fill("#username", "dr-birke")
    await page.fill("#password", PASSWORD)
    await page.fill("#password_repeat", PASSWORD)
    await page.check("#consent")
    await page.click("form[action='/signup'] button[type=submit]")
    assert "birke@example.org" in await page.inner_text("[role=status]")

    [mail] = await smtp.wait_for(1)
    link = re.search(r"(http://127\.0\.0\.1:\d+/confirm/\S+)", mail_text(mail)).group(1)
    await page.goto(link)
    await page.click("main form button[type=submit]")
    await page.goto(base + "/login")
    await page.fill("#identifier", "dr-birke")
    await page.fill("#password", PASSWORD)
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_url("**/account/two-factor/setup")
    assert await page.get_attribute("img.qr-code", "src") is not None
    secret = (await page.inner_text("#totp-secret")).replace(" ", "")
    await page.fill("#code", pyotp.TOTP(secret).now())
    await page.click("form[action='/account/two-factor/setup'] button[type=submit]")
    assert len(await page.query_selector_all("#recovery-codes li")) == 10
    await page.click("a.button[href='/']")
    await page.wait_for_url("**/p/hausarztpraxis-birke/")
    assert "Hausarztpraxis Birke" in await page.inner_text("h1")
    assert await page.query_selector("a[href='/p/hausarztpraxis-birke/staff']") is not None
    await page.screenshot(path=str(tmp_path / "dashboard.png"))
    assert problems == []
