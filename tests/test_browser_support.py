"""Which browsers a call works in. Debian's firefox-esr (tests/firefox_pages.py) beside
headless Chromium, checked tile by tile with the media check of tests/call_pages.py: peer
to peer in each pair of the two (the path direct on both pages), three through the relay
with Firefox in each role, a Firefox patient who refused the camera, the fall back to the
relay when the direct path fails. And a browser without WebRTC or camera access, which is
told which browsers work."""

from __future__ import annotations

import contextlib
import re

import pytest

from smartpractice.onboarding.invitations import Invitee
from tests.call_pages import (
    DOCTOR,
    FIRST_FRAMES,
    GUEST,
    PATIENT,
    a_patient_without_camera_sees_and_hears,
    assert_direct,
    assert_relayed,
    enter_call,
    until_every_tile_plays,
)
from tests.firefox_pages import REFUSING_PREFS, Firefox, needs_firefox
from tests.helpers import consultation_at_lindenhof, logged_in, mail_text, needs_chromium

pytestmark = needs_chromium

# Both browsers of a call drop every address the other one sends, in trickled candidates
# and in the descriptions, so the direct path cannot work, as between two strict NATs. The
# relay's answers keep theirs (aiortc's origin line: "o=- N N IN IP4 0.0.0.0").
NO_DIRECT_PATH = r"""(() => {
  const fromRelay = (sdp) => /^o=- (\d+) \1 IN IP4 0\.0\.0\.0\r?$/m.test(sdp);
  RTCPeerConnection.prototype.addIceCandidate = () => Promise.resolve();
  const apply = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (description, ...rest) {
    if (description && description.sdp && !fromRelay(description.sdp)) {
      description = {type: description.type, sdp: description.sdp.replace(/^a=candidate:.*\r?\n/gm, "")};
    }
    return apply.call(this, description, ...rest);
  };
})()"""


def browsers_of(firefox_is: str, firefox, chromium) -> tuple:
    """(the clinician's browser, the patient's)."""
    return (firefox, chromium) if firefox_is == "clinician" else (chromium, firefox)


# The clinician's browser, then the patient's.
PAIRS = [pytest.param(pair, id=pair, marks=[needs_firefox] if "firefox" in pair else [])
         for pair in ("chromium-chromium", "chromium-firefox", "firefox-chromium", "firefox-firefox")]


@pytest.mark.parametrize("pair", PAIRS)
async def test_two_people_see_and_hear_each_other_peer_to_peer_in_each_pair_of_browsers(live_server, browser, pair):
    """Each pair of browsers, each way round, straight to each other. Each Firefox is a
    process of its own, as each person's browser runs on a computer of its own (in two user
    contexts of one Firefox, the page opened first, a tab in the background, never got as
    far as its camera)."""
    app, _, consultation, base = await consultation_at_lindenhof(live_server)
    async with contextlib.AsyncExitStack() as stack:
        async def browser_for(kind: str):  # noqa: ANN202 - Playwright's Browser or a Firefox
            return browser if kind == "chromium" else await stack.enter_async_context(Firefox.launched())

        doctor_in, patient_in = pair.split("-")
        doctor, doctor_errors = await logged_in(await browser_for(doctor_in), base, "dr-sommer", app)
        patient, patient_errors = await logged_in(await browser_for(patient_in), base, "erika")
        await enter_call(doctor, base, consultation.id)
        await enter_call(patient, base, consultation.id)

        shown = await until_every_tile_plays({DOCTOR: doctor, PATIENT: patient})
        for page in (doctor, patient):
            assert await page.get_attribute("#call", "data-topology") == "p2p"
        assert_direct(shown)
        assert doctor_errors == patient_errors == []


@needs_firefox
async def test_firefox_and_chromium_fall_back_to_the_relay_when_the_direct_path_fails(live_server, browser, firefox):
    """The direct path fails; the pages say so, the server moves the two to the relay, and
    each sees and hears the other through it."""
    app, _, consultation, base = await consultation_at_lindenhof(live_server)
    doctor, doctor_errors = await logged_in(browser, base, "dr-sommer", app)
    patient, patient_errors = await logged_in(firefox, base, "erika")
    for page in (doctor, patient):
        await page.context.add_init_script(NO_DIRECT_PATH)
        await enter_call(page, base, consultation.id)
    for page in (doctor, patient):
        # The page waits 15 s for a direct path (P2P_CONNECT_MS in static/call/peer-link.js).
        await page.wait_for_selector("#call[data-topology=relay]", timeout=40_000)
    shown = await until_every_tile_plays({DOCTOR: doctor, PATIENT: patient})
    assert_relayed(shown)
    # Firefox reports the failed direct path in the console itself, as an error.
    assert doctor_errors == [error for error in patient_errors if not error.startswith("WebRTC: ICE failed")] == []


async def guest_arrives(guest, doctor, link: str, tan: str, consultation_id: int) -> None:
    """The relative comes with the TAN from the mail; the doctor lets her in from the call
    (selectors both browsers' drivers understand)."""
    await guest.goto(link)
    await guest.fill("#tan", tan)
    await guest.click("form:has(#tan) button[type=submit]")
    await guest.wait_for_url(f"**/c/{consultation_id}")
    await doctor.click(".waiting-person button:first-of-type")  # "Hereinlassen"
    await guest.wait_for_url(f"**/c/{consultation_id}/call")


@needs_firefox
@pytest.mark.parametrize("firefox_is", ["clinician", "patient", "guest"])
async def test_three_through_the_relay_with_firefox_in_each_role(live_server, browser, firefox, smtp, firefox_is):
    """Clinician, patient and a relative invited with a TAN, one of them in Firefox: on
    every page, each of the two others' tiles plays video and sound through the relay."""
    app, _, consultation, base = await consultation_at_lindenhof(
        live_server, invitees=[Invitee.parse("gabi@example.org", GUEST)])
    mail = next(m for m in await smtp.wait_for(2) if "gabi@example.org" in m["To"])
    link = re.search(r"(http://127\.0\.0\.1:\d+/invitation/\S+)", mail_text(mail)).group(1)
    tan = re.search(r"\b(\d{4} \d{4})\b", mail_text(mail)).group(1)
    doctor_browser, patient_browser = browsers_of(firefox_is, firefox, browser)
    guest_browser = firefox if firefox_is == "guest" else browser

    doctor, doctor_errors = await logged_in(doctor_browser, base, "dr-sommer", app)
    patient, patient_errors = await logged_in(patient_browser, base, "erika")
    await enter_call(doctor, base, consultation.id)
    await enter_call(patient, base, consultation.id)
    guest = await (await guest_browser.new_context(locale="de-DE")).new_page()
    guest_errors: list[str] = []
    guest.on("pageerror", lambda error: guest_errors.append(str(error)))
    await guest.context.add_init_script(FIRST_FRAMES)
    await guest_arrives(guest, doctor, link, tan, consultation.id)
    await guest.wait_for_selector("#call[data-state=ready]")
    await guest.click("#join")

    pages = {DOCTOR: doctor, PATIENT: patient, GUEST: guest}
    for page in pages.values():
        await page.wait_for_selector("#call[data-topology=relay]")
    assert_relayed(await until_every_tile_plays(pages))
    assert doctor_errors == patient_errors == guest_errors == []


@needs_firefox
@pytest.mark.parametrize("relay_policy", ["p2p", "relay"])
async def test_a_firefox_patient_who_refused_the_camera_sees_and_hears_the_clinician(live_server, browser, relay_policy):
    """Without a grant Firefox names its addresses only by mDNS (.local) and ends its offer
    with end-of-candidates; the relay learns the address from Firefox's checks instead."""
    app, _, consultation, base = await consultation_at_lindenhof(live_server, relay_policy=relay_policy)
    async with Firefox.launched(REFUSING_PREFS) as refusing:
        await a_patient_without_camera_sees_and_hears(refusing, browser, base, app, consultation,
                                                      relay_policy)


# What Debian's WebKitGTK lacks (no WebRTC at all), and what a browser without camera
# access lacks, taken from Chromium before the page's scripts run.
WITHOUT = {
    "RTCPeerConnection": "delete window.RTCPeerConnection; delete window.webkitRTCPeerConnection;",
    "mediaDevices": "delete Navigator.prototype.mediaDevices;",
}


@pytest.mark.parametrize("missing", list(WITHOUT))
async def test_a_browser_without_webrtc_or_camera_access_is_told_which_browsers_work(live_server, browser, missing):
    """On the call page and on the device check of its own, instead of "the camera could
    not be started"; joining stays off."""
    _, _, consultation, base = await consultation_at_lindenhof(live_server)
    patient, errors = await logged_in(browser, base, "erika")
    await patient.context.add_init_script(WITHOUT[missing])
    for path, root in ((f"/c/{consultation.id}/call", "#call"), ("/device-check", "#device-check")):
        await patient.goto(base + path)
        await patient.wait_for_selector(f"{root}[data-state=unsupported]")
        message = await patient.inner_text("#device-error")
        assert message.startswith("Mit diesem Browser ist keine Videosprechstunde möglich."), (path, message)
        for working in ("Chrome", "Firefox", "Edge", "Safari"):
            assert working in message, (path, message)
        if root == "#call":
            assert await patient.is_disabled("#join")
    assert errors == []
