"""The call page on phones, in Chromium with touch and Playwright's device descriptors: an
iPhone 13 (390x664) and a Pixel 7 whose browser fills its 412x915 screen. What is checked
is where things are (bounding boxes), as a patient holding the phone would find them: the
device check's Join button on the first screen; in the call the other person's video first
and largest, the own preview small over it, every control on the first screen, at least
44 px each and not covered; from three people on, a grid of tiles that fits the screen."""

from __future__ import annotations

import asyncio
import contextlib
import re

import aiohttp
import pytest
from playwright.async_api import async_playwright, expect
from sqlalchemy import update

from smartpractice.keys import engine_key, services_key
from smartpractice.storage.tables import practices
from tests.helpers import PASSWORD, add_member, consultation_at_lindenhof, logged_in, needs_chromium

pytestmark = needs_chromium

# (descriptor, viewport instead of the descriptor's): the Pixel's browser shown full screen,
# as an app put on the home screen is.
PHONES = {"iphone-390x664": ("iPhone 13", None), "pixel-412x915": ("Pixel 7", {"width": 412, "height": 915})}
TOUCH = 44  # px: the smallest touch target (WCAG 2.5.5, Apple's and Google's guidance)
# The doctor's video on the patient's page plays: frames keep arriving. (Each tile's media,
# per track, is what tests/test_browser_call.py checks; here it is what is on the screen.)
DOCTOR_PLAYS = """() => {
  const video = document.querySelector(".tile[data-peer] video");
  return video && video.getVideoPlaybackQuality().totalVideoFrames > 30;
}"""


@pytest.fixture(params=list(PHONES), ids=list(PHONES))
async def phone(request) -> dict:
    """The browser context options of a phone: viewport, scale, mobile, touch, user agent."""
    name, viewport = PHONES[request.param]
    async with async_playwright() as playwright:
        descriptor = dict(playwright.devices[name])
    descriptor.pop("default_browser_type")
    if viewport:
        descriptor["viewport"] = descriptor["screen"] = viewport
    return descriptor


# Boxes of what the page shows, in CSS pixels of the viewport, and what a finger on the
# middle of each control would touch.
LAYOUT = """() => {
  const box = (el) => { const r = el.getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, height: r.height}; };
  const shown = (el) => el.offsetParent !== null || getComputedStyle(el).position === "fixed";
  const controls = [...document.querySelectorAll(".controls button")].filter(shown).map((button) => {
    const b = box(button);
    const hit = document.elementFromPoint(b.x + b.width / 2, b.y + b.height / 2);
    return {id: button.id || button.textContent.trim(), box: b, touched: button === hit || button.contains(hit)};
  });
  return {
    viewport: {width: window.innerWidth, height: window.innerHeight},
    scroll: {x: window.scrollX, y: window.scrollY, width: document.documentElement.scrollWidth},
    own: box(document.querySelector("#own-tile video")),
    tiles: [...document.querySelectorAll(".tile")].map((figure) => ({
      own: figure.id === "own-tile", name: figure.querySelector(".name").textContent, box: box(figure.querySelector("video")),
    })),
    controls,
  };
}"""


async def join_call(page, base: str, consultation_id: int) -> None:
    await page.goto(f"{base}/c/{consultation_id}/call")
    await page.wait_for_selector("#call[data-state=ready]")
    await page.click("#join")
    await page.wait_for_selector("#call[data-state=in_call]")


def area(box: dict) -> float:
    return box["width"] * box["height"]


def inside(inner: dict, outer: dict) -> bool:
    return (inner["x"] >= outer["x"] and inner["y"] >= outer["y"]
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5)


def overlap(a: dict, b: dict) -> bool:
    return not (a["x"] + a["width"] <= b["x"] + 0.5 or b["x"] + b["width"] <= a["x"] + 0.5
                or a["y"] + a["height"] <= b["y"] + 0.5 or b["y"] + b["height"] <= a["y"] + 0.5)


def assert_controls_on_the_first_screen(layout: dict, above: float) -> None:
    """Every control inside the first screen, below `above` (the videos' bottom edge), big
    enough for a finger and not covered by anything else."""
    height, width = layout["viewport"]["height"], layout["viewport"]["width"]
    assert layout["scroll"]["y"] == 0 and layout["scroll"]["width"] <= width, layout["scroll"]
    assert len(layout["controls"]) >= 4, layout["controls"]
    for control in layout["controls"]:
        box = control["box"]
        assert box["y"] >= above - 0.5 and box["y"] + box["height"] <= height + 0.5, control
        assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, control
        assert box["height"] >= TOUCH and box["width"] >= TOUCH, control
        assert control["touched"], f"{control['id']} is covered"


async def test_on_a_phone_the_other_person_comes_first_and_the_controls_stay_on_the_first_screen(
        live_server, browser, phone):
    app, _, consultation, base = await consultation_at_lindenhof(live_server)
    doctor, doctor_errors = await logged_in(browser, base, "dr-sommer", app)
    await join_call(doctor, base, consultation.id)
    patient, patient_errors = await logged_in(browser, base, "erika", device=phone)
    await patient.goto(f"{base}/c/{consultation.id}/call")
    await patient.wait_for_selector("#call[data-state=ready]")

    # The device check: the preview and the Join button both on the first screen.
    height = phone["viewport"]["height"]
    join, preview = await patient.locator("#join").bounding_box(), await patient.locator("#preview").bounding_box()
    assert join["y"] >= 0 and join["y"] + join["height"] <= height, join
    assert join["height"] >= TOUCH and join["width"] >= TOUCH, join
    assert preview["y"] + preview["height"] <= join["y"], (preview, join)
    await patient.tap("#join")
    await patient.wait_for_selector("#call[data-state=in_call]")
    await patient.wait_for_function(DOCTOR_PLAYS, timeout=30_000)

    layout = await patient.evaluate(LAYOUT)
    [other] = [tile for tile in layout["tiles"] if not tile["own"]]
    width = layout["viewport"]["width"]
    # The doctor's video: the first video, under only the title, the security code and the
    # status (docs/signalling.md), the screen's width and most of its height.
    assert other["name"] == "Dr Sommer"
    video = other["box"]
    assert video["y"] < 0.3 * height and video["width"] >= width - 16 and video["height"] >= 0.5 * height, video
    # The own preview: small, over the doctor's video.
    assert inside(layout["own"], video) and area(layout["own"]) < 0.15 * area(video), (layout["own"], video)
    assert_controls_on_the_first_screen(layout, above=video["y"] + video["height"])

    # A tap on a control does what it says: the doctor sees her muted.
    await patient.tap("#toggle-audio")
    await doctor.wait_for_selector(".tile[data-peer] .flags:has-text('Mikrofon aus')")
    # The chat opens on the first screen too, above the controls.
    await patient.tap("#toggle-chat")
    chat, bar = await patient.locator("#chat-text").bounding_box(), await patient.locator(".controls").bounding_box()
    assert chat["y"] >= 0 and chat["y"] + chat["height"] <= bar["y"] + 0.5, (chat, bar)
    assert_controls_on_the_first_screen(await patient.evaluate(LAYOUT), above=0)
    assert doctor_errors == patient_errors == []


@contextlib.asynccontextmanager
async def joined_without_media(base: str, consultation_id: int, usernames: list[str]):
    """Patients in the call on their signalling sockets only: each is a participant with a
    tile on every page, nothing more (the grid's layout needs no media)."""
    async with contextlib.AsyncExitStack() as stack:
        readers = []
        for username in usernames:
            session = await stack.enter_async_context(
                aiohttp.ClientSession(base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True)))
            login = await (await session.get("/login")).text()
            token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
            answer = await session.post("/login", data={"identifier": username, "password": PASSWORD, "csrf_token": token})
            assert answer.ok, answer.status
            socket = await stack.enter_async_context(
                session.ws_connect(f"/c/{consultation_id}/call/ws", headers={"Origin": base}))
            await socket.send_json({"type": "join", "version": 1})
            readers.append(asyncio.create_task(_drain(socket)))
        try:
            yield
        finally:
            for reader in readers:
                reader.cancel()


async def _drain(socket) -> None:
    async for _ in socket:
        pass


@pytest.mark.parametrize("people", [3, 4, 6])
async def test_three_to_six_people_share_a_grid_that_fits_the_phone(live_server, browser, phone, people):
    """Three: the two others one above the other, the own preview small over the first;
    four to six: everyone in two columns, the own tile last. Either way no tile over
    another (but the preview), each big enough to make out a face, all above the controls."""
    app, practice, consultation, base = await consultation_at_lindenhof(live_server)
    services = app[services_key]
    async with app[engine_key].begin() as conn:
        await conn.execute(update(practices).where(practices.c.id == practice.id).values(max_participants=6))
    others = [f"patient-{index}" for index in range(1, people)]
    ids = [await add_member(app, practice, "patient", username) for username in others]
    await services.consultations.add_participants(practice, consultation.id, None, patient_ids=ids)
    for key in ids:
        await services.waiting_room.state.admit(practice.id, consultation.id, f"u{key}")

    patient, errors = await logged_in(browser, base, "erika", device=phone)
    await join_call(patient, base, consultation.id)
    async with joined_without_media(base, consultation.id, others):
        await expect(patient.locator(".tile[data-peer]")).to_have_count(people - 1, timeout=20_000)
        layout = await patient.evaluate(LAYOUT)
    width = layout["viewport"]["width"]
    remote = [tile["box"] for tile in layout["tiles"] if not tile["own"]]
    [own] = [tile["box"] for tile in layout["tiles"] if tile["own"]]
    if people == 3:
        assert len({round(box["x"]) for box in remote}) == 1 and remote[0]["y"] < remote[1]["y"], remote
        assert inside(own, remote[0]) and area(own) < 0.25 * area(remote[0]), (own, remote)
        boxes = remote
    else:
        boxes = [*remote, own]
        assert len({round(box["x"]) for box in boxes}) == 2, boxes
        in_reading_order = sorted(boxes, key=lambda box: (round(box["y"]), box["x"]))
        assert in_reading_order[-1] is own, boxes
    for index, box in enumerate(boxes):
        assert box["width"] >= 0.4 * width and box["height"] >= 100, box
        assert all(not overlap(box, other) for other in boxes[index + 1:]), boxes
    assert min(box["y"] for box in boxes) >= 0
    assert_controls_on_the_first_screen(layout, above=max(box["y"] + box["height"] for box in boxes))
    assert errors == []
