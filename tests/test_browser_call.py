"""Real calls between headless Chromium browsers with fake cameras and microphones: video
decoded and audio received in every direction, peer to peer for two and through the relay
for three, shown by the connections' own statistics; a participant who drops comes back."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

from playwright.async_api import async_playwright
from sqlalchemy import update

from smartpractice.keys import engine_key, services_key
from smartpractice.onboarding.invitations import Invitee
from smartpractice.scheduling.consultations import Appointment
from smartpractice.storage.tables import practices
from tests.helpers import CHROMIUM, CHROMIUM_FLAGS, add_member, logged_in, mail_text, needs_chromium

pytestmark = needs_chromium

# What a page's connections say about themselves: decoded video frames and audio bytes
# received, and the candidate pairs in use ("host" on both ends and the other browser's
# port: peer to peer; the relay's port: relayed).
MEDIA = """async () => {
  const out = {frames: 0, audio: 0, pairs: []};
  for (const pc of window.smartpracticeCall.connections()) {
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") out.frames += s.framesDecoded || 0;
      if (s.type === "inbound-rtp" && s.kind === "audio") out.audio += s.bytesReceived || 0;
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const pair = stats.get(s.selectedCandidatePairId);
        const local = stats.get(pair.localCandidateId), remote = stats.get(pair.remoteCandidateId);
        out.pairs.push({local: local.port, remote: remote.port});
      }
    });
  }
  return out;
}"""


async def media(page) -> dict:
    return await page.evaluate(MEDIA)


async def until_media(page, frames: int, *, above: int = 0, within: float = 30.0) -> dict:
    """Wait until the page has decoded `frames` more video frames than `above` and received audio."""
    async with asyncio.timeout(within):
        while True:
            seen = await media(page)
            if seen["frames"] >= above + frames and seen["audio"] > 0:
                return seen
            await asyncio.sleep(0.25)


async def enter_call(page, base: str, consultation_id: int) -> None:
    await page.goto(f"{base}/c/{consultation_id}/call")
    await page.wait_for_selector("#call[data-state=ready]")
    await page.click("#join")
    await page.wait_for_selector("#call[data-state=in_call]")


async def consultation_at_lindenhof(live_server, *, invitees=(), relay_policy: str = "p2p"):
    """Dr. Sommer's consultation with Erika, who is already admitted: (app, practice,
    consultation, base URL)."""
    app = live_server.app
    services = app[services_key]
    practice = (await services.practices.create("Praxis Lindenhof", admin_email="linde@example.org", admin_username="linde")).practice
    async with app[engine_key].begin() as conn:
        await conn.execute(update(practices).where(practices.c.id == practice.id).values(relay_policy=relay_policy))
    doctor_id = await add_member(app, practice, "clinician", "dr-sommer")
    erika = await add_member(app, practice, "patient", "erika")
    plan = Appointment.parse("Kontrolle", services.clock.now() + timedelta(minutes=5), 20, now=services.clock.now())
    consultation = (await services.consultations.schedule(practice, doctor_id, plan, patient_ids=[erika],
                                                          invitees=list(invitees))).consultation
    await services.waiting_room.state.admit(practice.id, consultation.id, f"u{erika}")
    return app, practice, consultation, str(live_server.make_url("")).rstrip("/")


async def both_in_call(browser, app, base: str, consultation_id: int):
    """Dr. Sommer and Erika log in and join the call: their pages and page errors."""
    doctor, doctor_errors = await logged_in(browser, base, "dr-sommer", app)
    patient, patient_errors = await logged_in(browser, base, "erika")
    await enter_call(doctor, base, consultation_id)
    await enter_call(patient, base, consultation_id)
    return doctor, patient, doctor_errors, patient_errors


async def test_two_people_see_and_hear_each_other_peer_to_peer_and_after_a_drop(live_server, browser):
    app, _, consultation, base = await consultation_at_lindenhof(live_server)
    doctor, patient, doctor_errors, patient_errors = await both_in_call(browser, app, base, consultation.id)

    doctor_sees, patient_sees = await until_media(doctor, 60), await until_media(patient, 60)
    assert await doctor.get_attribute("#call", "data-topology") == "p2p"
    assert "Peer-to-Peer" in await doctor.inner_text("#topology")
    # One direct connection: each browser's remote end is the other browser's own port.
    [doctor_pair], [patient_pair] = doctor_sees["pairs"], patient_sees["pairs"]
    assert doctor_pair["remote"] == patient_pair["local"] and patient_pair["remote"] == doctor_pair["local"]
    assert await doctor.inner_text(".tile[data-peer] .name") == "Erika"

    await patient.click("#toggle-audio")
    await doctor.wait_for_selector(".tile[data-peer] .flags:has-text('Mikrofon aus')")
    await patient.click("#toggle-chat")
    await patient.fill("#chat-text", "Hören Sie mich?")
    await patient.press("#chat-text", "Enter")
    await doctor.click("#toggle-chat")
    await doctor.wait_for_selector("#chat-log li:has-text('Hören Sie mich?')")

    # The patient's laptop lid closes: the doctor sees "reconnecting", then the patient is back.
    context = patient.context
    await patient.close()
    await doctor.wait_for_selector(".tile[data-peer][data-state=reconnecting]")
    patient = await context.new_page()
    await enter_call(patient, base, consultation.id)
    await doctor.wait_for_selector(".tile[data-peer][data-state=connected]")
    before = (await media(doctor))["frames"]
    await until_media(patient, 30)
    await until_media(doctor, 30, above=before)

    doctor.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await doctor.click("button:has-text('Sprechstunde für alle beenden')")
    await patient.wait_for_selector("text=Diese Sprechstunde ist beendet.")
    assert doctor_errors == [] and patient_errors == []


async def test_three_people_meet_through_the_relay(live_server, browser, smtp):
    """Clinician and patient talk peer to peer; the clinician lets in a relative invited with
    a TAN, and the call moves to the relay: everyone receives both others' video and audio,
    and every connection ends at the server's relay."""
    app, _, consultation, base = await consultation_at_lindenhof(
        live_server, invitees=[Invitee.parse("gabi@example.org", "Gabi Gast")])
    mail = next(m for m in await smtp.wait_for(2) if "gabi@example.org" in m["To"])
    link = re.search(r"(http://127\.0\.0\.1:\d+/invitation/\S+)", mail_text(mail)).group(1)
    tan = re.search(r"\b(\d{4} \d{4})\b", mail_text(mail)).group(1)

    doctor, patient, doctor_errors, patient_errors = await both_in_call(browser, app, base, consultation.id)
    await doctor.wait_for_selector("#call[data-topology=p2p]")

    # The relative arrives with the TAN from the mail; the doctor lets her in from the call.
    guest = await (await browser.new_context(locale="de-DE")).new_page()
    guest_errors: list[str] = []
    guest.on("pageerror", lambda error: guest_errors.append(str(error)))
    await guest.goto(link)
    await guest.fill("#tan", tan)
    await guest.click("form:has(#tan) button[type=submit]")
    await guest.wait_for_url(f"**/c/{consultation.id}")
    arrival = doctor.locator(".waiting-person", has_text="Gabi Gast")
    await arrival.get_by_role("button", name="Hereinlassen", exact=True).click()
    await guest.wait_for_url(f"**/c/{consultation.id}/call")
    await guest.wait_for_selector("#call[data-state=ready]")
    await guest.click("#join")

    pages = (doctor, patient, guest)
    for page in pages:
        await page.wait_for_selector("#call[data-topology=relay]")
        await page.wait_for_function("document.querySelectorAll('.tile[data-peer]').length === 2")
    seen = [await until_media(page, 120) for page in pages]
    browser_ports = {pair["local"] for stats in seen for pair in stats["pairs"]}
    for stats in seen:
        # Two connections each (sending, receiving), both to the relay, none to another browser.
        assert len(stats["pairs"]) == 2
        assert not {pair["remote"] for pair in stats["pairs"]} & browser_ports
    assert "Gabi Gast" in await doctor.inner_text("#tiles")
    assert "Relay" in await guest.inner_text("#topology")
    assert doctor_errors == patient_errors == guest_errors == []


async def test_a_practice_that_always_relays_relays_two(live_server, browser):
    app, _, consultation, base = await consultation_at_lindenhof(live_server, relay_policy="relay")
    doctor, patient, _, _ = await both_in_call(browser, app, base, consultation.id)
    doctor_sees, patient_sees = await until_media(doctor, 60), await until_media(patient, 60)
    assert await patient.get_attribute("#call", "data-topology") == "relay"
    browser_ports = {pair["local"] for pair in doctor_sees["pairs"] + patient_sees["pairs"]}
    assert not {pair["remote"] for pair in doctor_sees["pairs"] + patient_sees["pairs"]} & browser_ports

    # Through the relay too, a participant who drops out comes back with fresh connections.
    context = patient.context
    await patient.close()
    await doctor.wait_for_selector(".tile[data-peer][data-state=reconnecting]")
    # Frames can only grow past this on a new receiving connection (the old one's count stops).
    before = (await media(doctor))["frames"]
    patient = await context.new_page()
    await enter_call(patient, base, consultation.id)
    await doctor.wait_for_selector(".tile[data-peer][data-state=connected]")
    await until_media(patient, 30)
    await until_media(doctor, 30, above=before)


async def test_the_device_check_says_so_when_camera_and_microphone_are_refused(live_server):
    _, _, consultation, base = await consultation_at_lindenhof(live_server)
    # This browser asks before using camera and microphone, and the answer is no.
    flags = [flag for flag in CHROMIUM_FLAGS if flag != "--use-fake-ui-for-media-stream"] + ["--deny-permission-prompts"]
    async with async_playwright() as playwright:
        refusing = await playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
        try:
            patient, errors = await logged_in(refusing, base, "erika")
            await patient.goto(f"{base}/c/{consultation.id}/call")
            await patient.wait_for_selector("#device-error:not([hidden])")
            assert "nicht verwenden" in await patient.inner_text("#device-error")
            # Joining without camera and microphone still works: to see and hear the others.
            await patient.click("#join")
            await patient.wait_for_selector("#call[data-state=in_call]")
            assert errors == []
        finally:
            await refusing.close()
