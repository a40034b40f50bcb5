"""A person in a real browser: first login with an initial password, through to the dashboard."""

from __future__ import annotations

import pyotp

from smartpractice.keys import services_key
from tests.helpers import needs_chromium

pytestmark = needs_chromium


async def test_first_login_forces_own_password_then_reaches_the_dashboard(live_server, browser, tmp_path):
    services = live_server.app[services_key]
    created = await services.practices.create("Praxis Sonnenhof", admin_email="sonne@example.org", admin_username="sonne")
    base = str(live_server.make_url("")).rstrip("/")
    page = await browser.new_page(locale="de-DE")
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    refused: list[str] = []
    page.on("response", lambda response: refused.append(f"{response.status} {response.url}") if response.status >= 400 else None)

    await page.goto(base + "/")
    await page.click("main a[href='/login']")
    await page.wait_for_url("**/login")
    await page.fill("#identifier", "sonne")
    await page.fill("#password", "falsches-passwort")
    await page.click("form[action='/login'] button[type=submit]")
    assert "Benutzername, E-Mail-Adresse oder Passwort" in await page.inner_text("[role=alert]")
    assert await page.input_value("#identifier") == "sonne"

    await page.fill("#password", created.admin_password)
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_url("**/account/password")
    await page.fill("#current_password", created.admin_password)
    await page.fill("#new_password", "Kastanie-Leuchtturm-Morgenrot")
    await page.fill("#new_password_repeat", "Kastanie-Leuchtturm-Morgenrot")
    await page.click("form[action='/account/password'] button[type=submit]")
    # Staff set up an authenticator app next, then go on where they were headed.
    await page.wait_for_url("**/account/two-factor/setup")
    secret = (await page.inner_text("#totp-secret")).replace(" ", "")
    await page.fill("#code", pyotp.TOTP(secret).now())
    await page.click("form[action='/account/two-factor/setup'] button[type=submit]")
    await page.click("a.button[href='/']")
    await page.wait_for_url(f"**/p/{created.practice.slug}/")
    assert "Praxis Sonnenhof" in await page.inner_text("h1")
    await page.screenshot(path=str(tmp_path / "dashboard.png"))
    assert problems == []
    assert refused == [f"401 {base}/login"]  # only the wrong password

    await page.click("form[action='/logout'] button")
    await page.wait_for_url("**/login")
    await page.goto(base + f"/p/{created.practice.slug}/")
    assert "/login" in page.url
