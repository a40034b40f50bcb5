"""In a real browser, at desktop and phone size: a new practice signs up (its founder saying
whether they treat patients), confirms by mail, sets up its app, reaches its dashboard, which
has the clinician's pages exactly when the founder treats patients."""

from __future__ import annotations

import re

import pyotp
import pytest

from tests.helpers import mail_text, needs_chromium

pytestmark = needs_chromium

PASSWORD = "Kiefernzapfen-Wanderweg-Nebel"
SIZES = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {"viewport": {"width": 390, "height": 664}, "is_mobile": True, "has_touch": True},
}


@pytest.mark.parametrize("treats", ["yes", "no"])
@pytest.mark.parametrize("size", list(SIZES))
async def test_new_practice_from_sign_up_through_two_factor_setup_to_its_dashboard(
    live_server, browser, smtp, tmp_path, size, treats,
):
    base = str(live_server.make_url("")).rstrip("/")
    page = await (await browser.new_context(locale="de-DE", **SIZES[size])).new_page()
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
    # Unanswered, the browser holds the form back on the question.
    await page.click("form[action='/signup'] button[type=submit]")
    assert await page.evaluate("document.querySelector('#treats_patients_yes').validity.valueMissing")
    assert "Behandeln Sie selbst Patientinnen und Patienten?" in await page.inner_text("legend")
    choice = f"label:has(#treats_patients_{treats})"
    await (page.tap(choice) if size == "phone" else page.click(choice))
    assert await page.is_checked(f"#treats_patients_{treats}")
    # Nothing of the form lies beyond the screen's width.
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
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
    # A founder who treats patients plans consultations and watches the waiting room.
    planning = await page.query_selector("a[href='/p/hausarztpraxis-birke/consultations/new']")
    waiting = await page.query_selector("#waiting-room")
    assert (planning is not None, waiting is not None) == ((True, True) if treats == "yes" else (False, False))
    if treats == "yes":
        await page.click("a[href='/p/hausarztpraxis-birke/consultations/new']")
        await page.wait_for_url("**/consultations/new")
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await page.screenshot(path=str(tmp_path / "dashboard.png"))
    assert problems == []
