"""End-to-end encrypted calls across browsers and APIs (docs/e2ee.md): Chromium with Firefox
peer to peer, four encrypting browsers through the relay with Firefox among them, and a
shared screen sealed and decoded, with the standard RTCRtpScriptTransform and with
Chromium's older createEncodedStreams, and shared from Firefox. Every tile opens its own
sender's frames and every page shows the same code.

Firefox shares its screen only with a screen to share: headless Firefox has none. Its
synthetic devices (media.navigator.streams.fake, the MediaEngineFake behind it) are a camera
and a microphone only; getDisplayMedia goes to the real desktop capturer, which in headless
mode finds no screen and refuses with NotFoundError, whatever the prefs. So that test runs
Firefox in a window on a virtual X display of its own (Xvfb, 1280x720, the fixture
firefox_with_a_screen), still without any real display. Firefox also never grants a screen by
a permission pref (a "screen" permission of 1 leaves the page waiting for the picker); only
media.navigator.permission.disabled skips the picker (tests/firefox_pages.py, SCREEN_PREFS)."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

from smartpractice.keys import services_key
from tests.call_pages import (
    DOCTOR,
    PATIENT,
    assert_relayed,
    enter_call,
    tiles,
    until_every_tile_plays,
)
from tests.e2ee_pages import (
    START_FAILURES,
    assert_encrypted_with_one_code,
    assert_every_tile_decrypts,
    encryption,
    receiving,
)
from tests.firefox_pages import needs_firefox, needs_xvfb
from tests.helpers import add_member, consultation_at_lindenhof, logged_in, needs_chromium

pytestmark = needs_chromium


@needs_firefox
async def test_chromium_and_firefox_encrypt_peer_to_peer(live_server, browser, firefox):
    """Firefox encrypts with the standard RTCRtpScriptTransform, Chromium beside it."""
    app, _, consultation, base = await consultation_at_lindenhof(live_server)
    doctor, doctor_errors = await logged_in(browser, base, "dr-sommer", app)
    patient, patient_errors = await logged_in(firefox, base, "erika")
    await enter_call(doctor, base, consultation.id)
    await enter_call(patient, base, consultation.id)
    pages = {DOCTOR: doctor, PATIENT: patient}
    await until_every_tile_plays(pages)
    assert await patient.get_attribute("#call", "data-topology") == "p2p"
    await assert_encrypted_with_one_code(pages)
    await assert_every_tile_decrypts(pages, start_failures=START_FAILURES)
    assert (await encryption(patient))["api"] == "script_transform"
    assert doctor_errors == patient_errors == []


# Four browsers on two cores: the camera at 320x240 and 15 frames a second instead of
# 640x480 at 20 (both browsers' synthetic cameras scale to what is asked).
SMALL_CAMERA = """(() => {
  if (!window.MediaDevices) return; // a document without camera access (seen once in Firefox)
  const open = MediaDevices.prototype.getUserMedia;
  MediaDevices.prototype.getUserMedia = function (wanted) {
    if (wanted && wanted.video) {
      const video = typeof wanted.video === "object" ? wanted.video : {};
      wanted = {...wanted, video: {...video, width: 320, height: 240, frameRate: 15}};
    }
    return open.call(this, wanted);
  };
})()"""


@needs_firefox
async def test_four_browsers_through_the_relay_firefox_among_them_all_encrypt(live_server, browser, firefox):
    """Clinician and two patients in Chromium, a patient in Firefox: every tile of every page
    opens its sender's frames, and the four pages show one code."""
    app, practice, consultation, base = await consultation_at_lindenhof(live_server, relay_policy="relay")
    services = app[services_key]
    others = [await add_member(app, practice, "patient", name) for name in ("paul", "oma")]
    await services.consultations.add_participants(practice, consultation.id, None, patient_ids=others)
    for key in others:
        await services.waiting_room.state.admit(practice.id, consultation.id, f"u{key}")
    pages, errors = {}, {}
    for name, username, driver in ((DOCTOR, "dr-sommer", browser), (PATIENT, "erika", firefox),
                                   ("Paul", "paul", browser), ("Oma", "oma", browser)):
        page, errors[name] = await logged_in(driver, base, username, app if username == "dr-sommer" else None)
        await page.context.add_init_script(SMALL_CAMERA)
        await enter_call(page, base, consultation.id)
        pages[name] = page
    for page in pages.values():
        await page.wait_for_selector("#call[data-topology=relay]")
    assert_relayed(await until_every_tile_plays(pages, within=60.0))
    await assert_encrypted_with_one_code(pages)
    await assert_every_tile_decrypts(pages)
    assert all(found == [] for found in errors.values()), errors


# What a page receives of each video track: frames decoded and the frame's size.
VIDEO_IN = """async () => {
  const found = {};
  for (const pc of window.smartpracticeCall.connections()) {
    (await pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video" && s.trackIdentifier)
        found[s.trackIdentifier] = {frames: s.framesDecoded || 0, width: s.frameWidth || 0, height: s.frameHeight || 0};
    });
  }
  return found;
}"""

# Chromium as a browser that has only its older createEncodedStreams (before the standard
# RTCRtpScriptTransform came in Chromium 141).
ONLY_ENCODED_STREAMS = "delete window.RTCRtpScriptTransform;"


async def assert_shared_screen_decoded(sharer, sharer_key, viewer, pages) -> None:
    """Once the sharer's page shows it sharing: the sharer's tile on the viewer's page keeps
    its receiver and track and shows frames of the screen's size (16:9, where the camera is
    4:3), opened and decoded, while every video frame the sharer sends is sealed."""
    [sharer_tile] = (await tiles(viewer))["tiles"]
    track = sharer_tile["video"]["track"]
    before = (await receiving(viewer))[sharer_key]["video"]
    async with asyncio.timeout(30):
        while True:
            shown = (await viewer.evaluate(VIDEO_IN))[track]
            if shown["height"] and abs(shown["width"] / shown["height"] - 16 / 9) < 0.05:
                break
            await asyncio.sleep(0.5)
    await until_every_tile_plays(pages)
    after = (await receiving(viewer))[sharer_key]["video"]
    assert after["track"] == track and after["from"] == after["peer"]
    assert after["frames"] - before["frames"] >= 30, (before, after)  # the screen's frames, opened
    assert after["failed"] <= before["failed"] + START_FAILURES, (before, after)
    sent = [t for t in (await encryption(sharer))["transforms"] if t["side"] == "send" and t["kind"] == "video"]
    assert sent and all(t["keyId"] is not None and t["frames"] > 0 for t in sent), sent


@pytest.mark.parametrize(("api", "relay_policy"), [("script_transform", "p2p"), ("encoded_streams", "relay")])
async def test_a_shared_screen_is_encrypted_and_the_others_decode_it(live_server, browser, api, relay_policy):
    """The doctor shares the screen (16:9, where the camera is 4:3): its frames go through
    the same sending transform, sealed, and the patient's page opens and decodes them; with
    the standard transform peer to peer, and with createEncodedStreams through the relay."""
    app, _, consultation, base = await consultation_at_lindenhof(live_server, relay_policy=relay_policy)
    doctor, doctor_errors = await logged_in(browser, base, "dr-sommer", app)
    patient, patient_errors = await logged_in(browser, base, "erika")
    for page in (doctor, patient):
        if api == "encoded_streams":
            await page.context.add_init_script(ONLY_ENCODED_STREAMS)
        await enter_call(page, base, consultation.id)
    pages = {DOCTOR: doctor, PATIENT: patient}
    await until_every_tile_plays(pages)
    await assert_encrypted_with_one_code(pages)
    for page in pages.values():
        assert (await encryption(page))["api"] == api
    await assert_every_tile_decrypts(pages, start_failures=START_FAILURES)

    await doctor.click("#toggle-screen")
    await expect(doctor.locator("#toggle-screen")).to_have_text("Teilen beenden")
    await assert_shared_screen_decoded(doctor, DOCTOR, patient, pages)
    assert doctor_errors == patient_errors == []


@needs_firefox
@needs_xvfb
async def test_firefox_shares_its_screen_encrypted_through_the_relay(live_server, browser, firefox_with_a_screen):
    """Erika, in Firefox, shares her screen (the 16:9 virtual display, where her camera is
    4:3): Firefox's RTCRtpScriptTransform seals its frames like the camera's, the relay
    forwards them, and the doctor's Chromium opens and decodes them in Erika's tile."""
    app, _, consultation, base = await consultation_at_lindenhof(live_server, relay_policy="relay")
    doctor, doctor_errors = await logged_in(browser, base, "dr-sommer", app)
    patient, patient_errors = await logged_in(firefox_with_a_screen, base, "erika")
    await enter_call(doctor, base, consultation.id)
    await enter_call(patient, base, consultation.id)
    pages = {DOCTOR: doctor, PATIENT: patient}
    await until_every_tile_plays(pages)
    await assert_encrypted_with_one_code(pages)
    assert (await encryption(patient))["api"] == "script_transform"
    await assert_every_tile_decrypts(pages, start_failures=START_FAILURES)

    await patient.click("#toggle-screen")
    async with asyncio.timeout(15):
        while await patient.inner_text("#toggle-screen") != "Teilen beenden":  # noqa: ASYNC110 - in Firefox
            await asyncio.sleep(0.2)
    await assert_shared_screen_decoded(patient, PATIENT, doctor, pages)
    assert doctor_errors == patient_errors == []
