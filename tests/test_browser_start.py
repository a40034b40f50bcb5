"""In a real browser, at desktop and phone size: the start page fits the screen, its ways in
are buttons a finger can hit, and they lead where they say."""

from __future__ import annotations

import pytest

from smartpractice.keys import services_key
from tests.helpers import needs_chromium

pytestmark = needs_chromium

SIZES = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {"viewport": {"width": 390, "height": 664}, "is_mobile": True, "has_touch": True},
}
# Every link and button of the start's main part: its box in CSS pixels.
BOXES = """() => [...document.querySelectorAll("main a, main button")].map(e => {
  const r = e.getBoundingClientRect();
  return {text: e.textContent.trim(), left: r.left, right: r.right, height: r.height};
})"""


@pytest.mark.parametrize("size", list(SIZES))
async def test_the_start_page_fits_and_its_ways_in_lead_where_they_say(live_server, browser, size):
    services = live_server.app[services_key]
    practice = (await services.practices.create("Praxis Sonnenhof", admin_email="sonne@example.org",
                                                admin_username="sonne")).practice
    code = (await services.registrations.options(practice)).code
    await services.registrations.configure(practice, enabled=True, ask_date_of_birth=False, actor=None)
    base = str(live_server.make_url("")).rstrip("/")
    page = await (await browser.new_context(locale="de-DE", **SIZES[size])).new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    await page.goto(base + "/")
    assert "Videosprechstunde mit Ihrer Praxis" in await page.inner_text("h1")
    width = await page.evaluate("window.innerWidth")
    assert await page.evaluate("document.documentElement.scrollWidth") <= width
    boxes = await page.evaluate(BOXES)
    assert len(boxes) >= 7
    for box in boxes:
        assert 0 <= box["left"] and box["right"] <= width, box
        # Touch targets of at least 44 px, as the stylesheet promises (WCAG 2.5.8 AAA).
        assert box["height"] >= 44, box

    await page.click("main a[href='/login#tan-login']")
    await page.wait_for_url("**/login#tan-login")
    assert await page.is_visible("#tan-login #code")
    await page.go_back()
    await page.fill("#registration-code", f"{base}/register/{code}")
    await page.click("#register-with-code button[type=submit]")
    await page.wait_for_url(f"**/register/{code}")
    assert "Praxis Sonnenhof" in await page.inner_text("main")
    await page.go_back()
    await page.click("main a[href='/signup']")
    await page.wait_for_url("**/signup")
    assert problems == []
