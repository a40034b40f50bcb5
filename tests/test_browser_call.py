"""Real calls between headless Chromium browsers with fake cameras and microphones: video
decoded and audio received in every direction, peer to peer for two and through the relay
for three, shown by the connections' own statistics; a participant who drops comes back."""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import async_playwright, expect

from smartpractice.keys import services_key
from smartpractice.onboarding.invitations import Invitee
from tests.call_pages import (
    DOCTOR,
    FIRST_FRAMES,
    GUEST,
    PATIENT,
    a_patient_without_camera_sees_and_hears,
    assert_direct,
    assert_first_frames_within,
    assert_relayed,
    both_in_call,
    enter_call,
    until_every_tile_plays,
)
from tests.group_peers import CallParticipant
from tests.helpers import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    PASSWORD,
    add_member,
    consultation_at_lindenhof,
    logged_in,
    mail_text,
    needs_chromium,
)

pytestmark = needs_chromium



async def test_two_people_see_and_hear_each_other_peer_to_peer_and_after_a_drop(live_server, browser):
    app, _, consultation, base = await consultation_at_lindenhof(live_server)
    doctor, patient, doctor_errors, patient_errors = await both_in_call(browser, app, base, consultation.id)

    shown = await until_every_tile_plays({DOCTOR: doctor, PATIENT: patient})
    assert await doctor.get_attribute("#call", "data-topology") == "p2p"
    assert "Peer-to-Peer" in await doctor.inner_text("#topology")
    assert_direct(shown)

    await patient.click("#toggle-audio")
    await doctor.wait_for_selector(".tile[data-peer] .flags:has-text('Mikrofon aus')")
    await patient.click("#toggle-chat")
    await patient.fill("#chat-text", "Hören Sie mich?")
    await patient.press("#chat-text", "Enter")
    await doctor.click("#toggle-chat")
    await doctor.wait_for_selector("#chat-log li:has-text('Hören Sie mich?')")
    await patient.click("#toggle-audio")  # back on: the check below wants her sound

    # The patient's laptop lid closes: the doctor sees "reconnecting", then the patient is back.
    context = patient.context
    await patient.close()
    await doctor.wait_for_selector(".tile[data-peer][data-state=reconnecting]")
    patient = await context.new_page()
    await enter_call(patient, base, consultation.id)
    await doctor.wait_for_selector(".tile[data-peer][data-state=connected]")
    await until_every_tile_plays({DOCTOR: doctor, PATIENT: patient})

    doctor.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await doctor.click("button:has-text('Sprechstunde für alle beenden')")
    await patient.wait_for_selector("text=Diese Sprechstunde ist beendet.")
    assert doctor_errors == [] and patient_errors == []


async def guest_arrives(guest, doctor, link: str, tan: str, consultation_id: int) -> None:
    """The relative comes with the TAN from the mail; the doctor lets her in from the call."""
    await guest.goto(link)
    await guest.fill("#tan", tan)
    await guest.click("form:has(#tan) button[type=submit]")
    await guest.wait_for_url(f"**/c/{consultation_id}")
    arrival = doctor.locator(".waiting-person", has_text=GUEST)
    await arrival.get_by_role("button", name="Hereinlassen", exact=True).click()
    await guest.wait_for_url(f"**/c/{consultation_id}/call")


async def test_three_people_meet_through_the_relay(live_server, browser, smtp):
    """Clinician and patient talk peer to peer; the clinician lets in a relative invited with
    a TAN, and the call moves to the relay: on every page, each of the two others' tiles
    plays video and sound, soon after the relay answered. The relative leaves (back to peer
    to peer) and comes back (the relay again), and then the patient's connection drops and
    she comes back: each time, every tile plays again."""
    app, _, consultation, base = await consultation_at_lindenhof(
        live_server, invitees=[Invitee.parse("gabi@example.org", GUEST)])
    mail = next(m for m in await smtp.wait_for(2) if "gabi@example.org" in m["To"])
    link = re.search(r"(http://127\.0\.0\.1:\d+/invitation/\S+)", mail_text(mail)).group(1)
    tan = re.search(r"\b(\d{4} \d{4})\b", mail_text(mail)).group(1)

    doctor, patient, doctor_errors, patient_errors = await both_in_call(browser, app, base, consultation.id)
    await doctor.wait_for_selector("#call[data-topology=p2p]")
    await until_every_tile_plays({DOCTOR: doctor, PATIENT: patient})

    guest = await (await browser.new_context(locale="de-DE")).new_page()
    guest_errors: list[str] = []
    guest.on("pageerror", lambda error: guest_errors.append(str(error)))
    await guest.context.add_init_script(FIRST_FRAMES)
    await guest_arrives(guest, doctor, link, tan, consultation.id)
    await guest.wait_for_selector("#call[data-state=ready]")
    await guest.click("#join")

    pages = {DOCTOR: doctor, PATIENT: patient, GUEST: guest}
    for page in pages.values():
        await page.wait_for_selector("#call[data-topology=relay]")
    shown = await until_every_tile_plays(pages)
    assert_relayed(shown)
    # The relative's first frames came after her admission, the others' after the switch.
    latencies = assert_first_frames_within(shown, 5.0)
    print(f"first frames after the relay's answer (s): {latencies}")
    assert "Relay" in await guest.inner_text("#topology")

    # The relative leaves: the two others go back to peer to peer.
    await guest.click("#hang-up")
    for page in (doctor, patient):
        await page.wait_for_selector("#call[data-topology=p2p]")
        await expect(page.locator(".tile[data-peer]")).to_have_count(1, timeout=30_000)
    await until_every_tile_plays({DOCTOR: doctor, PATIENT: patient})

    # She comes back through the link in the mail, still admitted: the relay again.
    await enter_call(guest, base, consultation.id)
    for page in pages.values():
        await page.wait_for_selector("#call[data-topology=relay]")
    shown = await until_every_tile_plays(pages)
    assert_relayed(shown)
    print(f"first frames after she came back (s): {assert_first_frames_within(shown, 5.0)}")

    # The patient's connection drops; she comes back and everyone receives her afresh.
    context = patient.context
    await patient.close()
    await doctor.wait_for_selector(f".tile[data-peer][data-state=reconnecting]:has-text('{PATIENT}')")
    pages[PATIENT] = patient = await context.new_page()
    await enter_call(patient, base, consultation.id)
    await patient.wait_for_selector("#call[data-topology=relay]")
    shown = await until_every_tile_plays(pages)
    assert_relayed(shown)
    print(f"first frames after the patient came back (s): {assert_first_frames_within(shown, 5.0)}")
    assert doctor_errors == patient_errors == guest_errors == []


async def test_four_people_through_the_relay_in_and_out_in_any_order(live_server, browser):
    """Three browsers and an aiortc participant in a process of its own, speaking the same
    signalling (a fourth browser does not fit two cores): everyone sees and hears everyone,
    tile by tile; the patient drops and comes back, Paul leaves first, then Oma, and the two
    left go back to peer to peer. The aiortc participant cannot encrypt end to end; the
    practice lets it in, and while it is there every page says the call has transport
    encryption only."""
    app, practice, consultation, base = await consultation_at_lindenhof(live_server, e2ee_policy="allow_transport")
    services = app[services_key]
    paul, oma = (await add_member(app, practice, "patient", "paul"),
                 await add_member(app, practice, "patient", "oma"))
    await services.consultations.add_participants(practice, consultation.id, None, patient_ids=[paul, oma])
    for key in (paul, oma):
        await services.waiting_room.state.admit(practice.id, consultation.id, f"u{key}")
    doctor, patient, doctor_errors, patient_errors = await both_in_call(browser, app, base, consultation.id)
    third, third_errors = await logged_in(browser, base, "paul")
    await enter_call(third, base, consultation.id)
    pages = {DOCTOR: doctor, PATIENT: patient, "Paul": third}
    for page in pages.values():
        await page.wait_for_selector("#call[data-topology=relay]")
    await until_every_tile_plays(pages)

    aiortc = CallParticipant("Oma")
    await aiortc.start(base, consultation.id, "oma", PASSWORD)
    try:
        for page in pages.values():
            await expect(page.locator(".tile[data-peer]")).to_have_count(3, timeout=30_000)
        shown = await until_every_tile_plays(pages, also=("Oma",))
        await aiortc.until_receiving([DOCTOR, PATIENT, "Paul"])
        assert_relayed(shown)
        for page in pages.values():
            await expect(page.locator("#e2ee")).to_have_attribute("data-mode", "transport")
            await expect(page.locator("#e2ee-mode")).to_contain_text("Nur Transportverschlüsselung")
        print(f"first frames with four (s): {assert_first_frames_within(shown, 5.0)}")

        # The patient's connection drops, and she comes back.
        context = patient.context
        await patient.close()
        await doctor.wait_for_selector(f".tile[data-peer][data-state=reconnecting]:has-text('{PATIENT}')")
        pages[PATIENT] = patient = await context.new_page()
        await enter_call(patient, base, consultation.id)
        await until_every_tile_plays(pages, also=("Oma",))
        await aiortc.until_receiving([DOCTOR, PATIENT, "Paul"])

        # Paul leaves first; three are left, still through the relay.
        await third.click("#hang-up")
        del pages["Paul"]
        for page in pages.values():
            await expect(page.locator(".tile[data-peer]")).to_have_count(2, timeout=30_000)
        await until_every_tile_plays(pages, also=("Oma",))
        await aiortc.until_receiving([DOCTOR, PATIENT])

        # Then Oma: the two left talk peer to peer again.
        await aiortc.leave()
        for page in pages.values():
            await page.wait_for_selector("#call[data-topology=p2p]")
            await page.wait_for_selector("#e2ee[data-mode=e2ee]")
        await until_every_tile_plays(pages)
    finally:
        await aiortc.stop()
    assert doctor_errors == patient_errors == third_errors == []


async def test_a_practice_that_always_relays_relays_two(live_server, browser):
    app, _, consultation, base = await consultation_at_lindenhof(live_server, relay_policy="relay")
    doctor, patient, _, _ = await both_in_call(browser, app, base, consultation.id)
    shown = await until_every_tile_plays({DOCTOR: doctor, PATIENT: patient})
    assert await patient.get_attribute("#call", "data-topology") == "relay"
    assert_relayed(shown)
    assert_first_frames_within(shown, 5.0)

    # Through the relay too, a participant who drops out comes back with fresh connections.
    context = patient.context
    await patient.close()
    await doctor.wait_for_selector(".tile[data-peer][data-state=reconnecting]")
    patient = await context.new_page()
    await enter_call(patient, base, consultation.id)
    await doctor.wait_for_selector(".tile[data-peer][data-state=connected]")
    shown = await until_every_tile_plays({DOCTOR: doctor, PATIENT: patient})
    assert_first_frames_within(shown, 5.0)


@pytest.mark.parametrize("relay_policy", ["p2p", "relay"])
async def test_the_device_check_says_so_when_camera_and_microphone_are_refused(live_server, browser, relay_policy):
    """A patient who refuses camera and microphone is told so, joins anyway, and sees and
    hears the clinician, peer to peer and through the relay."""
    app, _, consultation, base = await consultation_at_lindenhof(live_server, relay_policy=relay_policy)
    # This browser asks before using camera and microphone, and the answer is no.
    flags = [flag for flag in CHROMIUM_FLAGS if flag != "--use-fake-ui-for-media-stream"] + ["--deny-permission-prompts"]
    async with async_playwright() as playwright:
        refusing = await playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
        try:
            await a_patient_without_camera_sees_and_hears(refusing, browser, base, app,
                                                          consultation, relay_policy)
        finally:
            await refusing.close()
