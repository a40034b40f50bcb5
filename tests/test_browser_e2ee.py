"""End-to-end encrypted calls between headless Chromium browsers (docs/e2ee.md): every tile
decodes what its sender encrypted, peer to peer and through the relay; every page shows the
same code; a newcomer decodes from its first keyed frame on (within a second of having
the key and the frames) and no tile stays black; after a leave the frames carry a new key id;
chat and mute state pass the server as ciphertext; no second of unreadable frames at the
start; a public key swapped on the server makes the codes differ and leaves that
participant's tiles dark without breaking the page; and the relay cannot decode what it
forwards. Firefox, four browsers and screen share: tests/test_browser_e2ee_browsers.py."""

from __future__ import annotations

import asyncio
import base64

import av
import pytest
from aiortc.codecs.vpx import Vp8Decoder, vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from playwright.async_api import expect

from smartpractice.keys import services_key
from smartpractice.rooms import call_protocol
from smartpractice.rooms.call import Calls
from smartpractice.rtc.forwarding import Forward
from smartpractice.rtc.keyframes import is_vp8_keyframe_start
from tests.call_pages import (
    DOCTOR,
    PATIENT,
    both_in_call,
    enter_call,
    tiles,
    until_every_tile_plays,
)
from tests.e2ee_pages import (
    CODE,
    START_FAILURES,
    assert_decodes_from_the_key_on,
    assert_encrypted_with_one_code,
    assert_every_tile_decrypts,
    assert_no_tile_black,
    encryption,
    receiving,
)
from tests.helpers import add_member, consultation_at_lindenhof, logged_in, needs_chromium

pytestmark = needs_chromium

async def test_two_people_peer_to_peer_encrypt_compare_codes_and_chat_and_mute_in_ciphertext(
        live_server, browser, monkeypatch):
    passed: list[dict] = []
    muted: list[dict] = []
    chat, set_media, sealed_media = Calls.chat, Calls.set_media, Calls.sealed_media

    async def recording(self, seat, name, **content):  # noqa: ANN001, ANN003
        passed.append(content)
        await chat(self, seat, name, **content)

    async def recording_media(self, seat, session, **state):  # noqa: ANN001, ANN003
        muted.append(state)
        await set_media(self, seat, session, **state)

    async def recording_sealed(self, seat, sealed):  # noqa: ANN001
        muted.append({"sealed": sealed})
        await sealed_media(self, seat, sealed)

    monkeypatch.setattr(Calls, "chat", recording)
    monkeypatch.setattr(Calls, "set_media", recording_media)
    monkeypatch.setattr(Calls, "sealed_media", recording_sealed)
    app, _, consultation, base = await consultation_at_lindenhof(live_server)
    doctor, patient, doctor_errors, patient_errors = await both_in_call(browser, app, base, consultation.id)
    pages = {DOCTOR: doctor, PATIENT: patient}
    await until_every_tile_plays(pages)
    await assert_encrypted_with_one_code(pages)
    await assert_every_tile_decrypts(pages, start_failures=START_FAILURES)
    await expect(doctor.locator("#e2ee-compare")).to_be_visible()

    # Erika mutes her microphone: the doctor's page shows it, the server saw ciphertext only.
    await patient.click("#toggle-audio")
    await expect(doctor.locator(f".tile[data-peer]:has-text('{PATIENT}') .flags")).to_have_text("Mikrofon aus")
    await patient.click("#toggle-video")
    await expect(doctor.locator(f".tile[data-peer]:has-text('{PATIENT}') .flags")).to_have_text("Mikrofon aus · Kamera aus")
    assert muted and all(set(state) == {"sealed"} for state in muted), muted

    await patient.click("#toggle-chat")
    await patient.fill("#chat-text", "Die Tabletten helfen.")
    await patient.press("#chat-text", "Enter")
    await doctor.click("#toggle-chat")
    await doctor.wait_for_selector("#chat-log li:has-text('Die Tabletten helfen.')")
    [message] = passed
    assert message.get("text") is None and "Tabletten" not in base64.b64decode(message["sealed"]).decode("latin1")
    assert doctor_errors == patient_errors == []


async def test_a_reconnect_shows_a_new_code_on_every_page_and_says_it_changed(live_server, browser):
    """Erika's page loads anew mid-call (a reconnect): she comes back with a new key pair, so
    the code both read to each other changes; the doctor's page says so and asks to compare
    again, both pages show the same new code, and each decodes the other again."""
    app, _, consultation, base = await consultation_at_lindenhof(live_server)
    doctor, patient, doctor_errors, patient_errors = await both_in_call(browser, app, base, consultation.id)
    pages = {DOCTOR: doctor, PATIENT: patient}
    await until_every_tile_plays(pages)
    before = await assert_encrypted_with_one_code(pages)
    await expect(doctor.locator("#e2ee-notice")).to_be_hidden()

    await enter_call(patient, base, consultation.id)
    await until_every_tile_plays(pages)
    after = await assert_encrypted_with_one_code(pages)
    assert after != before
    await expect(doctor.locator("#e2ee-notice")).to_have_text(
        "Der Sicherheitscode hat sich geändert (jemand ist hinzugekommen, gegangen oder neu verbunden). "
        "Bitte vergleichen Sie ihn erneut.")
    await assert_every_tile_decrypts(pages)
    assert doctor_errors == patient_errors == []


async def test_through_the_relay_a_newcomer_decodes_and_a_leave_changes_the_keys(live_server, browser):
    app, practice, consultation, base = await consultation_at_lindenhof(live_server, relay_policy="relay")
    services = app[services_key]
    paul = await add_member(app, practice, "patient", "paul")
    await services.consultations.add_participants(practice, consultation.id, None, patient_ids=[paul])
    await services.waiting_room.state.admit(practice.id, consultation.id, f"u{paul}")
    doctor, patient, doctor_errors, patient_errors = await both_in_call(browser, app, base, consultation.id)
    pages = {DOCTOR: doctor, PATIENT: patient}
    await until_every_tile_plays(pages)
    two = await assert_encrypted_with_one_code(pages)

    third, third_errors = await logged_in(browser, base, "paul")
    await enter_call(third, base, consultation.id)
    pages["Paul"] = third
    for page in pages.values():
        await page.wait_for_selector("#call[data-topology=relay]")
    await until_every_tile_plays(pages)
    # Paul decodes each of the others from the moment he has both their key and their frames:
    # they switched to keys made for him once he (and everyone else) acknowledged them, not
    # after the timer's second (with the timer, Paul dropped their frames in that second).
    for name in (DOCTOR, PATIENT):
        switch = (await encryption(pages[name]))["lastSwitch"]
        print(f"{name}'s switch to a key for Paul: {switch}")
        assert switch["by"] == "acks", (name, switch)
    await assert_decodes_from_the_key_on(third)
    for page in pages.values():
        await assert_no_tile_black(page)
    three = await assert_encrypted_with_one_code(pages)
    assert three != two
    await expect(doctor.locator("#e2ee-notice")).to_contain_text("Sicherheitscode hat sich geändert")
    before = await assert_every_tile_decrypts(pages)
    paul_had = {t["keyId"] for kinds in before["Paul"].values() for t in kinds.values()}

    await third.click("#hang-up")
    del pages["Paul"]
    for page in pages.values():
        await expect(page.locator(".tile[data-peer]")).to_have_count(1, timeout=30_000)
    # The frames each page receives carry a key made after Paul left.
    async with asyncio.timeout(20):
        while True:
            now = {viewer: await receiving(page) for viewer, page in pages.items()}
            ids = {(viewer, sender, kind): t["keyId"] for viewer, shown in now.items()
                   for sender, kinds in shown.items() for kind, t in kinds.items() if t}
            old = {key: value for key, value in ids.items()
                   if value == before[key[0]][key[1]][key[2]]["keyId"] or value in paul_had}
            if len(ids) == 4 and not old:
                break
            await asyncio.sleep(0.5)
    await until_every_tile_plays(pages)
    assert await assert_encrypted_with_one_code(pages) == two  # the same two people, the same keys
    assert doctor_errors == patient_errors == third_errors == []


def _stranger_keys() -> dict:
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    raw = x25519.X25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"p256": base64.b64encode(p256).decode(), "x25519": base64.b64encode(raw).decode()}


async def test_a_public_key_swapped_by_the_server_shows_in_the_codes_and_stays_unreadable(
        live_server, browser, monkeypatch):
    passed_on = call_protocol.Connection._on_e2ee_public
    stranger = _stranger_keys()

    async def swapping(self, message):  # noqa: ANN001 - a server that lies about Erika's keys
        if self.name == PATIENT and message["keys"]:
            message = {**message, "keys": stranger}
        await passed_on(self, message)

    monkeypatch.setattr(call_protocol.Connection, "_on_e2ee_public", swapping)
    app, _, consultation, base = await consultation_at_lindenhof(live_server)
    doctor, patient, doctor_errors, patient_errors = await both_in_call(browser, app, base, consultation.id)
    for page in (doctor, patient):
        await expect(page.locator("#e2ee-code")).to_have_text(CODE, timeout=15_000)
    assert await doctor.inner_text("#e2ee-code") != await patient.inner_text("#e2ee-code")

    await asyncio.sleep(8)  # media flows (packets arrive) but nothing opens
    for viewer, page, other in ((DOCTOR, doctor, PATIENT), (PATIENT, patient, DOCTOR)):
        [tile] = (await tiles(page))["tiles"]
        assert tile["audio"]["count"] > 0, f"{viewer}'s page receives no packets at all"
        assert tile["video"]["count"] == 0, f"{viewer}'s page decoded {other}'s video"
        for kind, transform in (await receiving(page))[other].items():
            assert transform["frames"] == 0 and transform["failed"] > 0, (viewer, kind, transform)
    # The page still works: the chat opens and the controls answer.
    await doctor.click("#toggle-chat")
    await expect(doctor.locator("#chat")).to_be_visible()
    assert doctor_errors == patient_errors == []


# A browser without encoded transforms (as Chromium before 86 or WebKitGTK would be).
NO_TRANSFORMS = """(() => {
  delete window.RTCRtpScriptTransform;
  delete RTCRtpSender.prototype.createEncodedStreams;
  delete RTCRtpReceiver.prototype.createEncodedStreams;
})()"""


def decoded_frames(packets: list[tuple]) -> dict[int, dict[str, int]]:
    """Per publisher (SSRC), the frames reassembled from the relay's VP8 packets from the
    first keyframe on: how many end in the end-to-end format byte (0xE2) and how many do not,
    and of each, how many aiortc's VP8 decoder refused and how many it turned into a picture."""
    frames: dict[int, dict[int, list]] = {}
    for ssrc, sequence, timestamp, marker, payload in packets:
        frames.setdefault(ssrc, {}).setdefault(timestamp, []).append((sequence, marker, payload))
    result = {}
    for ssrc, by_time in frames.items():
        decoder, started = Vp8Decoder(), False
        counts = dict.fromkeys(("sealed", "sealed_refused", "sealed_pictures", "plain", "plain_refused", "plain_pictures"), 0)
        for timestamp in sorted(by_time):
            parts = sorted(by_time[timestamp])
            complete = parts[-1][1] and all(b[0] - a[0] == 1 for a, b in zip(parts, parts[1:], strict=False))
            started = started or (complete and is_vp8_keyframe_start(parts[0][2]))
            if not (started and complete):
                continue
            data = b"".join(vp8_depayload(payload) for _, _, payload in parts)
            kind = "sealed" if data[-1] == 0xE2 else "plain"
            counts[kind] += 1
            try:
                shown = decoder.decode(JitterFrame(data=data, timestamp=timestamp))
            except av.FFmpegError:  # libvpx refuses what it cannot read
                counts[kind + "_refused"] += 1
                continue
            counts[kind + "_pictures"] += bool(shown)
        result[ssrc] = counts
    return result


@pytest.mark.parametrize("transforms", [True, False], ids=["encrypted", "transport_only"])
async def test_the_relay_forwards_video_its_own_decoder_cannot_read(live_server, browser, monkeypatch, transforms):
    """The relay's forwarded VP8 payloads, recorded on the server: end to end encrypted,
    aiortc's decoder refuses every frame and makes no picture; with a browser that cannot encrypt (the
    practice allows it), every page says so and the same decoder reads the frames."""
    packets: list[tuple] = []
    forward = Forward.forward

    def recording(self, codec_name, marker, sequence_number, timestamp, ssrc, *rest):  # noqa: ANN001, ANN002
        if codec_name.lower() == "vp8" and len(packets) < 20000:
            packets.append((ssrc, sequence_number, timestamp, marker, rest[-1]))
        forward(self, codec_name, marker, sequence_number, timestamp, ssrc, *rest)

    monkeypatch.setattr(Forward, "forward", recording)
    app, _, consultation, base = await consultation_at_lindenhof(
        live_server, relay_policy="relay", e2ee_policy="require" if transforms else "allow_transport")
    doctor, doctor_errors = await logged_in(browser, base, "dr-sommer", app)
    patient, patient_errors = await logged_in(browser, base, "erika")
    if not transforms:
        await patient.context.add_init_script(NO_TRANSFORMS)
    await enter_call(doctor, base, consultation.id)
    await enter_call(patient, base, consultation.id)
    pages = {DOCTOR: doctor, PATIENT: patient}
    await until_every_tile_plays(pages)
    mode = "e2ee" if transforms else "transport"
    for page in pages.values():
        await expect(page.locator("#e2ee")).to_have_attribute("data-mode", mode)
    await asyncio.sleep(3)

    found = decoded_frames(list(packets))
    print(f"relay's VP8 frames per publisher ({'encrypted' if transforms else 'transport only'}): {found}")
    # (A publisher whose connection to the relay was replaced shows under a second SSRC.)
    kind = "sealed" if transforms else "plain"
    assert len([c for c in found.values() if c[kind] >= 20]) >= 2, f"video of both publishers: {found}"
    for ssrc, counts in found.items():
        if transforms:
            assert counts["plain"] == 0, (ssrc, counts)
            # The frame tag's first-partition size reads 0xFF 0xFF on the wire (docs/e2ee.md,
            # version 2): libvpx refuses each frame before it looks at the ciphertext. (In
            # version 1 it now and then painted ciphertext as noise: 1 of 117 frames seen.)
            assert counts["sealed_refused"] == counts["sealed"] and counts["sealed_pictures"] == 0, (
                f"SSRC {ssrc}: the relay's decoder read encrypted frames: {counts}")
        elif counts["plain"] >= 20:
            # Once the call knows one browser cannot encrypt, nobody does (a keyframe starts it).
            assert counts["plain_pictures"] >= counts["plain"] - 2, (ssrc, counts)
    assert doctor_errors == patient_errors == []


async def test_a_browser_without_encoded_transforms_is_refused_by_default(live_server, browser):
    app, _, consultation, base = await consultation_at_lindenhof(live_server)
    patient, errors = await logged_in(browser, base, "erika")
    await patient.context.add_init_script(NO_TRANSFORMS)
    await patient.goto(f"{base}/c/{consultation.id}/call")
    await expect(patient.locator("#device-error")).to_contain_text("Chrome, Edge, Firefox oder Safari")
    await expect(patient.locator("#join")).to_be_disabled()
    assert errors == []
