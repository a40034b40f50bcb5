"""The patient web app in Chromium at a phone's and at a computer's size: the browser parses
the manifest and finds nothing that stops installing it, the icons are the sizes the
manifest names, the service worker is active, a page the server cannot deliver becomes the
offline page, and the Cache Storage holds the offline page and its static files and nothing
of the patient."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from playwright.async_api import async_playwright

from smartpractice.keys import services_key
from smartpractice.scheduling.consultations import Appointment
from smartpractice.web.web_app import OFFLINE_FILES
from tests.helpers import CHROMIUM, CHROMIUM_FLAGS, DESKTOP, PASSWORD, add_member, needs_chromium

pytestmark = needs_chromium

PHONE = {"viewport": {"width": 412, "height": 915}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2.625}
ICON_SIZES = """async (urls) => {
  const sizes = {};
  for (const url of urls) {
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
    const view = new DataView(bytes.buffer);
    sizes[url] = [view.getUint32(16), view.getUint32(20), String.fromCharCode(...bytes.slice(1, 4))];
  }
  return sizes;
}"""
CACHED = """async () => {
  const entries = [];
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    for (const request of await cache.keys()) {
      const response = await cache.match(request);
      entries.push({cache: name, url: request.url, type: response.headers.get("content-type"),
                    body: await response.text()});
    }
  }
  return entries;
}"""


@pytest.fixture(params=[PHONE, DESKTOP], ids=["phone", "desktop"])
async def device(tmp_path, request):
    """Chromium with a profile on disk, as a phone's or a computer's browser has: in a
    private window (Playwright's default contexts) Chromium never offers to install an app."""
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=CHROMIUM, args=CHROMIUM_FLAGS, locale="de-DE", **request.param)
        yield context
        await context.close()


async def test_the_web_app_installs_works_offline_and_keeps_nothing_personal(live_server, device):
    app = live_server.app
    services = app[services_key]
    practice = (await services.practices.create("Praxis Lindenhof", admin_email="linde@example.org",
                                                admin_username="linde")).practice
    doctor = await add_member(app, practice, "clinician", "dr-sommer")
    erika = await add_member(app, practice, "patient", "erika-mustermann")
    plan = Appointment.parse("Kontrolle Knie", services.clock.now() + timedelta(days=2), 20, now=services.clock.now())
    consultation = (await services.consultations.schedule(practice, doctor, plan, patient_ids=[erika])).consultation
    base = str(live_server.make_url("")).rstrip("/")

    page = device.pages[0]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(base + "/login")
    await page.fill("#identifier", "erika-mustermann")
    await page.fill("#password", PASSWORD)
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_url("**/p/*/")
    cdp = await page.context.new_cdp_session(page)
    assert "Erika Mustermann" in await page.inner_text("main")
    hint = page.locator("#install-hint")
    await hint.wait_for()
    assert "Startbildschirm" in await hint.inner_text() and "Zum Home-Bildschirm" in await hint.inner_text()

    # The manifest as Chromium parsed it: no errors, German, and what Android needs.
    manifest = await cdp.send("Page.getAppManifest")
    assert manifest["errors"] == [] and manifest["url"] == base + "/manifest.webmanifest?lang=de"
    parsed = await page.evaluate("async (url) => (await fetch(url)).json()", manifest["url"])
    assert parsed["name"] == "smartpractice Videosprechstunde" and parsed["short_name"] == "Sprechstunde"
    assert parsed["lang"] == "de" and parsed["display"] == "standalone"
    assert parsed["start_url"] == parsed["scope"] == "/"
    theme = await page.get_attribute("meta[name=theme-color]", "content")
    assert parsed["theme_color"] == theme == "#1d5c63"
    icons = {(icon["sizes"], icon["purpose"]): icon["src"] for icon in parsed["icons"]}
    assert set(icons) == {("192x192", "any"), ("512x512", "any"), ("192x192", "maskable"), ("512x512", "maskable")}
    touch_icon = await page.get_attribute("link[rel=apple-touch-icon]", "href")
    sizes = await page.evaluate(ICON_SIZES, [*icons.values(), touch_icon])
    for (size, _), src in icons.items():
        assert sizes[src] == [int(size.split("x")[0])] * 2 + ["PNG"], src
    assert sizes[touch_icon] == [180, 180, "PNG"]
    assert await page.get_attribute("meta[name=apple-mobile-web-app-title]", "content") == "Sprechstunde"

    # The worker is active and controls the page; Chromium then has nothing against installing.
    worker = await page.evaluate("""async () => {
      const registration = await navigator.serviceWorker.ready;
      return {scope: registration.scope, state: registration.active.state, script: registration.active.scriptURL};
    }""")
    assert worker == {"scope": base + "/", "state": "activated", "script": base + "/service-worker.js?lang=de"}
    await page.reload()
    assert await page.evaluate("navigator.serviceWorker.controller !== null")
    assert (await cdp.send("Page.getInstallabilityErrors"))["installabilityErrors"] == []

    # Pages and answers with the patient in them pass through the worker.
    for path in (f"/c/{consultation.id}", "/account", f"/p/{practice.slug}/"):
        await page.goto(base + path)
    answers = await page.evaluate("""async () => [
      (await (await fetch('/account/data')).text()).includes('erika-mustermann@example.org'),
      (await fetch('/api/v1/consultations')).status]""")
    assert answers == [True, 401]

    # The server goes away: every page is the offline page, at the address asked for.
    await live_server.close()
    for path in (f"/p/{practice.slug}/", "/account", "/login"):
        await page.goto(base + path)
        assert page.url == base + path
        assert await page.inner_text("h1") == "Keine Verbindung"
        assert "mit dem Internet verbunden" in await page.inner_text("main")
    # Its style comes from the cache: the card's background is the stylesheet's.
    assert await page.evaluate("getComputedStyle(document.querySelector('.card')).backgroundColor") == "rgb(255, 255, 255)"
    assert await page.evaluate("document.querySelector('#offline img').naturalWidth") == 192

    entries = await page.evaluate(CACHED)
    expected = {"/offline?lang=de"} | {f"/static/{name}" for name in OFFLINE_FILES}
    assert {urlsplit(entry["url"])._replace(scheme="", netloc="").geturl() for entry in entries} == expected
    assert len(entries) == len(expected) and len({entry["cache"] for entry in entries}) == 1
    personal = ("Erika", "Mustermann", "erika-mustermann", "example.org", "Kontrolle", "/api/", "csrf", "Praxis Lindenhof")
    for entry in entries:
        assert [word for word in personal if word.lower() in (entry["url"] + entry["body"]).lower()] == [], entry["url"]
    [offline] = [entry for entry in entries if urlsplit(entry["url"]).path == "/offline"]
    assert offline["type"].startswith("text/html") and "Keine Verbindung" in offline["body"]
    assert errors == []
