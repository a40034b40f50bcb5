"""The call's signalling over real WebSockets: who may connect, what the protocol answers,
how the call chooses between peer to peer and the relay, and media through the relay
between real aiortc peers that connected by these messages."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import update

from smartpractice.app import create_app
from smartpractice.keys import services_key
from smartpractice.logs import AccessLogger
from smartpractice.onboarding.invitations import Invitee
from smartpractice.rooms import call_protocol, protocol
from smartpractice.scheduling.consultations import Appointment
from smartpractice.storage.tables import practices
from tests.helpers import (
    JOIN,
    ORIGIN,
    add_member,
    close_code,
    log_in,
    mail_link,
    mail_text,
    make_app,
    make_settings,
    next_of,
    participants,
    post_form,
    second_browser,
)
from tests.rtc_peers import Peer, SmallCamera, relay_offer, until


@pytest.fixture
async def erika(app, practice) -> int:
    return await add_member(app, practice, "patient", "erika")


@pytest.fixture
async def booked(services, clock, practice, clinician, erika):
    plan = Appointment.parse("Kontrolle", clock.now() + timedelta(minutes=10), 20, now=clock.now())
    return (await services.consultations.schedule(practice, clinician.user_id, plan, patient_ids=[erika])).consultation


async def admit(services, practice, consultation, key: str) -> None:
    await services.waiting_room.state.admit(practice.id, consultation.id, key)


async def join(browser, consultation_id: int):
    socket = await browser.ws_connect(f"/c/{consultation_id}/call/ws", headers=ORIGIN)
    await socket.send_json({"type": "join", "version": 1})
    welcome = await next_of(socket, "welcome")
    return socket, welcome


@pytest.fixture
async def in_call(client, other_browser, services, practice, booked, erika):
    """Dr. Berg and Erika, both joined: (clinician socket, patient socket)."""
    await log_in(client, "dr-berg")
    await log_in(other_browser, "erika")
    await admit(services, practice, booked, f"u{erika}")
    doctor, _ = await join(client, booked.id)
    patient, _ = await join(other_browser, booked.id)
    yield doctor, patient
    for socket in (doctor, patient):
        await socket.close()


async def test_only_admitted_participants_of_this_consultation_get_in(client, other_browser, services, clock, practice, clinician, booked):
    with pytest.raises(aiohttp.WSServerHandshakeError) as nobody:
        await other_browser.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN)
    assert nobody.value.status == 401

    await log_in(other_browser, "erika")
    with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
        await other_browser.ws_connect(f"/c/{booked.id}/call/ws", headers={"Origin": "https://evil.example"})
    assert foreign.value.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as waiting:
        await other_browser.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN)
    assert waiting.value.status == 403  # still in the waiting room

    elsewhere = (await services.consultations.schedule(
        practice, clinician.user_id, Appointment.parse("", clock.now() + timedelta(minutes=5), 15, now=clock.now()))).consultation
    with pytest.raises(aiohttp.WSServerHandshakeError) as stranger:
        await other_browser.ws_connect(f"/c/{elsewhere.id}/call/ws", headers=ORIGIN)
    assert stranger.value.status == 404


async def test_a_guest_whose_tan_session_expired_is_refused(client, services, smtp, clock, practice, clinician):
    plan = Appointment.parse("", clock.now() + timedelta(minutes=5), 15, now=clock.now())
    scheduled = await services.consultations.schedule(
        practice, clinician.user_id, plan, invitees=[Invitee.parse("gast@example.org", "")])
    [message] = await smtp.wait_for(1)
    tan = re.search(r"\b(\d{4} \d{4})\b", mail_text(message)).group(1)
    await post_form(client, mail_link(message), {"tan": tan})
    cid = scheduled.consultation.id
    async with client.ws_connect(f"/c/{cid}/ws", headers=ORIGIN) as waiting:
        await waiting.send_json(JOIN)
        await next_of(waiting, "waiting")
        [person] = await services.waiting_room.waiting(practice.id)
        key = person.key
    await admit(services, practice, scheduled.consultation, key)
    socket, welcome = await join(client, cid)
    assert welcome["id"] == key
    # A guest without a name is not shown to the others by their email address.
    assert (await participants(socket, 1))["participants"][0]["name"] == ""
    await socket.close()

    clock.advance(minutes=15 + 61)  # past the end and the TAN's grace period
    with pytest.raises(aiohttp.WSServerHandshakeError) as expired:
        await client.ws_connect(f"/c/{cid}/call/ws", headers=ORIGIN)
    assert expired.value.status == 401


async def test_malformed_and_unknown_messages_get_errors_not_a_dropped_line(client, services, practice, booked):
    await log_in(client, "dr-berg")
    async with client.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN) as socket:
        await socket.send_json({"type": "chat", "text": "too early"})
        assert (await next_of(socket, "error"))["code"] == "not_joined"
        for bad, code in (("not json", "malformed"), ("[1, 2]", "malformed"), ('{"type": "dance"}', "unknown_type"),
                          ('{"type": "join"}', "invalid_field"), ('{"type": "join", "version": "1"}', "invalid_field")):
            await socket.send_str(bad)
            assert (await next_of(socket, "error"))["code"] == code, bad
        await socket.send_bytes(b"\x00\x01")
        assert (await next_of(socket, "error"))["code"] == "malformed"
        await socket.send_str("[" * 30000 + "]" * 30000)  # nesting deeper than the parser goes
        assert (await next_of(socket, "error"))["code"] == "malformed"

        await socket.send_json({"type": "join", "version": 1})
        await next_of(socket, "welcome")
        await socket.send_json({"type": "join", "version": 1})
        assert (await next_of(socket, "error"))["code"] == "already_joined"
        for bad, code in (({"type": "offer", "to": "u999", "sdp": "v=0"}, "unknown_peer"),
                          ({"type": "candidate", "to": "u1", "candidate": {"candidate": 5}}, "invalid_field"),
                          ({"type": "candidate", "to": "u1", "candidate": {"candidate": "c", "usernameFragment": {}}},
                           "invalid_field"),
                          ({"type": "chat", "text": "x" * 501}, "invalid_field"),
                          ({"type": "chat", "text": "   "}, "invalid_field"),
                          ({"type": "mute", "audio": "yes", "video": True}, "invalid_field"),
                          ({"type": "relay_offer", "purpose": "publish", "sdp": "v=0", "receive_from": []}, "not_relayed")):
            await socket.send_json(bad)
            error = await next_of(socket, "error")
            assert error["code"] == code and error["message"], bad
        # Still connected and answering after all that.
        await socket.send_json({"type": "chat", "text": "Hallo"})
        assert (await next_of(socket, "chat"))["text"] == "Hallo"


async def test_an_old_client_version_is_told_to_reload(client, booked):
    await log_in(client, "dr-berg")
    async with client.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN) as socket:
        await socket.send_json({"type": "join", "version": 99})
        assert (await next_of(socket, "error"))["code"] == "version_unsupported"
        assert await close_code(socket) == protocol.CLOSE_VERSION


async def test_oversized_messages_and_floods_are_capped(client, booked):
    await log_in(client, "dr-berg")
    async with client.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN) as socket:
        await socket.send_json({"type": "join", "version": 1})
        await next_of(socket, "welcome")
        for _ in range(call_protocol.RATE_BURST + 10):
            await socket.send_json({"type": "mute", "audio": True, "video": True})
        assert (await next_of(socket, "error"))["code"] == "rate_limited"
        # A flood that goes on ends the connection.
        for _ in range(protocol.RATE_STRIKES * 2):
            await socket.send_json({"type": "mute", "audio": True, "video": True})
        assert await close_code(socket) == aiohttp.WSCloseCode.POLICY_VIOLATION
    async with client.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN) as socket:
        await socket.send_str('{"type": "chat", "text": "' + "x" * call_protocol.MESSAGE_BYTES + '"}')
        assert await close_code(socket) == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


@pytest.mark.parametrize("frame", [b"\xff\xfe not UTF-8", b"x" * (call_protocol.MESSAGE_BYTES + 1)])
async def test_a_frame_that_breaks_the_protocol_closes_the_socket_and_the_seat_is_let_go(
        client, other_browser, services, practice, booked, frame):
    code = aiohttp.WSCloseCode.INVALID_TEXT if frame[0] == 0xFF else aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    await log_in(other_browser, "erika")
    async with other_browser.ws_connect(f"/c/{booked.id}/ws", headers=ORIGIN) as waiting:
        await waiting.send_json(JOIN)
        await next_of(waiting, "waiting")
        assert len(await services.waiting_room.waiting(practice.id)) == 1
        await waiting.send_frame(frame, aiohttp.WSMsgType.TEXT)
        assert await close_code(waiting) == code
    async with asyncio.timeout(5):  # the server lets go once its handler has seen the close
        while await services.waiting_room.waiting(practice.id):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await log_in(client, "dr-berg")
    async with client.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN) as socket:
        await socket.send_frame(frame, aiohttp.WSMsgType.TEXT)
        assert await close_code(socket) == code


@pytest.mark.parametrize("frame", [b"\xff\xfe not UTF-8", b"x" * (call_protocol.MESSAGE_BYTES + 1)],
                         ids=["invalid-utf8-1007", "too-big-1009"])
async def test_a_socket_closed_for_a_broken_frame_logs_one_access_line_and_no_traceback(
        aiohttp_server, aiohttp_client, settings, clock, passwords, caplog, frame):
    """Issue 17: such a close once went on to send "malformed" on the closing transport, an
    unhandled ClientConnectionResetError and a 500 in the log at every close. The server's
    own access logger, as `smartpractice serve` runs it, on both sockets of a consultation."""
    code = aiohttp.WSCloseCode.INVALID_TEXT if frame[0] == 0xFF else aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    app = create_app(settings, clock=clock, passwords=passwords)
    client = await aiohttp_client(await aiohttp_server(app, access_log_class=AccessLogger))
    services = app[services_key]
    practice = (await services.practices.create("Praxis", admin_email="chef@example.org", admin_username="chef")).practice
    clinician = await add_member(app, practice, "clinician", "dr-berg")
    erika = await add_member(app, practice, "patient", "erika")
    plan = Appointment.parse("Kontrolle", clock.now() + timedelta(minutes=10), 20, now=clock.now())
    booked = (await services.consultations.schedule(practice, clinician, plan, patient_ids=[erika])).consultation
    await log_in(client, "dr-berg")
    async with second_browser(client) as patient:
        await log_in(patient, "erika")
        async with patient.ws_connect(f"/c/{booked.id}/ws", headers=ORIGIN) as waiting:
            await waiting.send_json(JOIN)
            await next_of(waiting, "waiting")
            await waiting.send_frame(frame, aiohttp.WSMsgType.TEXT)
            assert await close_code(waiting) == code
    async with client.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN) as socket:
        await socket.send_json({"type": "join", "version": 1})
        await next_of(socket, "welcome")
        await socket.send_frame(frame, aiohttp.WSMsgType.TEXT)
        assert await close_code(socket) == code
    # The server goes on serving: a page, and the call to the one whose socket broke.
    assert (await client.get("/healthz")).status == 200
    socket, _ = await join(client, booked.id)
    await socket.close()

    def access_lines(route: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "aiohttp.access" and f" {route} " in r.getMessage()]

    # A socket's access line is written once its handler returned, which may be after the close reached us.
    async with asyncio.timeout(30):
        while len(access_lines("/c/{id}/ws")) < 1 or len(access_lines("/c/{id}/call/ws")) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert [line.split("ms")[0].rsplit(" ", 1)[0] for line in access_lines("/c/{id}/ws")] == ["GET /c/{id}/ws 101"]
    assert len(access_lines("/c/{id}/call/ws")) == 2  # the broken socket's and the one after
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
    assert "Traceback" not in caplog.text and " 500 " not in caplog.text


async def test_two_people_talk_peer_to_peer_and_their_signals_are_passed_on(in_call):
    doctor, patient = in_call
    listing = await participants(doctor, 2)
    assert listing["topology"] == "p2p"
    names = {person["name"] for person in listing["participants"]}
    assert "Erika" in names and all(person["state"] == "connected" for person in listing["participants"])
    erika = next(p for p in listing["participants"] if p["role"] == "patient")
    berg = next(p for p in listing["participants"] if p["role"] == "clinician")

    await doctor.send_json({"type": "offer", "to": erika["id"], "sdp": "v=0 offer"})
    offer = await next_of(patient, "offer")
    assert offer["from"] == berg["id"] and offer["sdp"] == "v=0 offer" and offer["session"] == berg["session"]
    await patient.send_json({"type": "answer", "to": berg["id"], "sdp": "v=0 answer"})
    assert (await next_of(doctor, "answer"))["sdp"] == "v=0 answer"
    candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0,
                 "usernameFragment": "abcd"}
    await patient.send_json({"type": "candidate", "to": berg["id"], "candidate": {**candidate, "extra": "x" * 900}})
    assert (await next_of(doctor, "candidate"))["candidate"] == candidate  # nothing else passed on
    await patient.send_json({"type": "answer", "to": berg["id"], "sdp": "v=0", "to_session": {"a": 1}})
    assert (await next_of(patient, "error"))["code"] == "invalid_field"

    await patient.send_json({"type": "mute", "audio": False, "video": True})
    muted = await next_of(doctor, "mute")
    assert muted == {"type": "mute", "from": erika["id"], "audio": False, "video": True}
    await patient.send_json({"type": "chat", "text": "Können Sie mich hören?"})
    said = await next_of(doctor, "chat")
    assert said["text"] == "Können Sie mich hören?" and said["name"] == "Erika"


async def test_a_connection_that_has_not_joined_hears_nothing_of_the_call(in_call, other_browser, booked):
    doctor, patient = in_call
    async with other_browser.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN) as lurker:
        await doctor.send_json({"type": "chat", "text": "Nur für die Anwesenden"})
        await next_of(patient, "chat")
        with pytest.raises(TimeoutError):
            await next_of(lurker, "chat", within=0.5)


async def test_the_welcome_comes_before_any_news_of_the_call(client, other_browser, services, practice, booked, erika,
                                                             monkeypatch):
    """News sent while a joining connection's attendance is written (here a chat) does not
    reach it before its welcome: the client would not know its own id yet (seen as a crash
    of a peer that compared its id with the others')."""
    await log_in(client, "dr-berg")
    await log_in(other_browser, "erika")
    await admit(services, practice, booked, f"u{erika}")
    doctor, _ = await join(client, booked.id)
    joined_call = services.waiting_room.joined_call

    async def news_meanwhile(seat, client_kind):  # noqa: ANN001
        if seat.role == "patient":
            await doctor.send_json({"type": "chat", "text": "Gleich geht es los"})
            await asyncio.sleep(0.5)
        return await joined_call(seat, client_kind)

    monkeypatch.setattr(services.waiting_room, "joined_call", news_meanwhile)
    async with other_browser.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN) as patient:
        await patient.send_json({"type": "join", "version": 1})
        heard = [await patient.receive_json(timeout=10)]
        while not (heard[-1]["type"] == "participants" and len(heard[-1]["participants"]) == 2):
            heard.append(await patient.receive_json(timeout=10))
        assert heard[0]["type"] == "welcome", heard
    await doctor.close()


async def test_a_failed_direct_path_moves_the_call_to_the_relay(in_call):
    doctor, patient = in_call
    await participants(doctor, 2)
    await patient.send_json({"type": "p2p_failed"})
    moved = await next_of(doctor, "participants")
    assert moved["topology"] == "relay" and moved["reason"] == "fallback"


async def test_a_dropped_participant_shows_as_reconnecting_and_comes_back(in_call, other_browser, booked):
    doctor, patient = in_call
    await participants(doctor, 2)
    await patient.close()
    gone = await next_of(doctor, "participants")
    assert sorted(p["state"] for p in gone["participants"]) == ["connected", "reconnecting"]
    again, _ = await join(other_browser, booked.id)
    back = await next_of(doctor, "participants")
    assert [p["state"] for p in back["participants"]] == ["connected", "connected"]
    await again.send_json({"type": "leave"})
    assert await close_code(again) == protocol.CLOSE_NORMAL
    assert len((await next_of(doctor, "participants"))["participants"]) == 1


async def test_a_second_tab_takes_over_and_the_end_closes_everyone(in_call, client, other_browser, practice, booked):
    doctor, patient = in_call
    second, _ = await join(other_browser, booked.id)
    assert (await next_of(patient, "replaced"))["type"] == "replaced"
    assert await close_code(patient) == protocol.CLOSE_REPLACED
    ended = await post_form(client, f"/p/{practice.slug}/consultations/{booked.id}/end", {})
    assert ended.status == 303
    await next_of(second, "ended")
    assert await close_code(second) == protocol.CLOSE_ENDED
    await second.close()


async def test_turn_credentials_are_minted_per_participant(aiohttp_client, tmp_path, database_url, clock):
    secret = "coturn-static-auth-secret"
    settings = make_settings(tmp_path, database_url, TURN_URLS="turn:turn.example.org:3478?transport=udp",
                             TURN_SECRET=secret, STUN_URLS="stun:turn.example.org:3478", TURN_TTL_SECONDS="600")
    client = await aiohttp_client(make_app(settings, clock=clock))
    services = client.app[services_key]
    practice = (await services.practices.create("Praxis Turm", admin_email="t@example.org", admin_username="turm")).practice
    doctor = await add_member(client.app, practice, "clinician", "dr-turm")
    plan = Appointment.parse("", clock.now() + timedelta(minutes=5), 15, now=clock.now())
    consultation = (await services.consultations.schedule(practice, doctor, plan)).consultation
    await log_in(client, "dr-turm")
    socket, welcome = await join(client, consultation.id)
    stun, turn = welcome["ice_servers"]
    assert stun == {"urls": ["stun:turn.example.org:3478"]}
    expires, participant = turn["username"].split(":")
    assert participant == f"u{doctor}" and int(expires) == int(clock.now().timestamp()) + 600
    expected = base64.b64encode(hmac.new(secret.encode(), turn["username"].encode(), hashlib.sha1).digest()).decode()
    assert turn["credential"] == expected and turn["urls"] == ["turn:turn.example.org:3478?transport=udp"]
    await socket.send_json({"type": "refresh_ice"})
    assert (await next_of(socket, "ice_servers"))["ice_servers"][1]["username"] == turn["username"]
    await socket.close()


async def test_no_ice_servers_are_configured_by_default(in_call, services):
    assert services.ice_servers.for_browser("u1") == []
    assert services.ice_servers.for_relay() == []



async def test_three_people_meet_through_the_relay(aiohttp_client, client, other_browser, services, app, practice, booked, erika):
    """A relative comes along: the call goes through the relay; each publishes once and
    receives the two others, decoded here by real aiortc peers."""
    oma = await add_member(app, practice, "patient", "oma")
    await services.consultations.add_participants(practice, booked.id, None, patient_ids=[oma])
    relative_browser = await aiohttp_client(client.server)  # a third browser on the same server
    for browser, name, key in ((client, "dr-berg", None), (other_browser, "erika", f"u{erika}"),
                               (relative_browser, "oma", f"u{oma}")):
        await log_in(browser, name)
        if key:
            await admit(services, practice, booked, key)
    doctor, _ = await join(client, booked.id)
    patient, _ = await join(other_browser, booked.id)
    assert (await participants(doctor, 2))["topology"] == "p2p"
    relative, _ = await join(relative_browser, booked.id)
    listing = await participants(doctor, 3)
    assert listing["topology"] == "relay" and listing["reason"] == "group"
    keys = [p["id"] for p in listing["participants"]]

    sockets = dict(zip(keys, (doctor, patient, relative), strict=True))
    publishers, receivers = {}, {}
    try:
        for key, socket in sockets.items():
            peer = publishers[key] = Peer()
            peer.pc.addTransceiver(SmallCamera(), direction="sendonly")
            await relay_offer(socket, peer, "publish", [])
        versions = []
        async with asyncio.timeout(5):
            while True:
                sources = await next_of(doctor, "relay_sources")
                versions.append(sources["version"])
                if len(sources["publishers"]) == 3:
                    break
        # Each list read later than the one before says so: a browser drops one older than
        # the list it took (announcements of concurrent attaches can overtake each other).
        assert versions == sorted(set(versions))
        for key, socket in sockets.items():
            others = [other for other in keys if other != key]
            peer = receivers[key] = Peer()
            for _ in others:
                peer.pc.addTransceiver("video", direction="recvonly")
            await relay_offer(socket, peer, "receive", others)
        for peer in receivers.values():
            await until(lambda peer=peer: peer.frames["video"] >= 20, within=20)
    finally:
        for peer in (*publishers.values(), *receivers.values()):
            await peer.close()
        for socket in sockets.values():
            await socket.close()


async def test_the_practice_can_send_every_call_through_the_relay(client, other_browser, engine, practice, booked):
    async with engine.begin() as conn:
        await conn.execute(update(practices).where(practices.c.id == practice.id).values(relay_policy="relay"))
    await log_in(client, "dr-berg")
    socket, _ = await join(client, booked.id)
    listing = await participants(socket, 1)
    assert listing["topology"] == "relay" and listing["reason"] == "policy"
    publisher = Peer()
    publisher.pc.addTransceiver(SmallCamera(), direction="sendonly")
    try:
        await relay_offer(socket, publisher, "publish", [])
        sources = await next_of(socket, "relay_sources")
        assert sources["publishers"][0]["kinds"] == ["video"]
        # A receiving connection may not send: it would publish under another name.
        sending = Peer()
        sending.pc.addTransceiver(SmallCamera(), direction="sendrecv")
        await sending.pc.setLocalDescription(await sending.pc.createOffer())
        await socket.send_json({"type": "relay_offer", "purpose": "receive", "sdp": sending.pc.localDescription.sdp,
                                "receive_from": []})
        assert (await next_of(socket, "error"))["code"] == "invalid_field"
        await sending.close()
    finally:
        await publisher.close()
        await socket.close()


P256 = base64.b64encode(b"\x04" + bytes(range(64))).decode()
X25519 = base64.b64encode(bytes(range(32))).decode()
WRAPPED = base64.b64encode(bytes(60)).decode()


async def test_end_to_end_keys_are_passed_to_the_one_participant_named_and_nothing_else(in_call):
    doctor, patient = in_call
    listing = await participants(doctor, 2)
    erika = next(p for p in listing["participants"] if p["role"] == "patient")
    berg = next(p for p in listing["participants"] if p["role"] == "clinician")
    await doctor.send_json({"type": "e2ee_public", "to": erika["id"], "to_session": erika["session"],
                            "keys": {"p256": P256, "x25519": X25519}})
    public = await next_of(patient, "e2ee_public")
    assert public == {"type": "e2ee_public", "from": berg["id"], "session": berg["session"],
                      "to_session": erika["session"], "keys": {"p256": P256, "x25519": X25519}}
    await patient.send_json({"type": "e2ee_public", "to": berg["id"], "keys": None})  # no encoded transforms here
    assert (await next_of(doctor, "e2ee_public"))["keys"] is None
    await doctor.send_json({"type": "e2ee_key", "to": erika["id"], "key_id": 0xFFFFFFFF, "wrapped": WRAPPED,
                            "extra": "dropped"})
    wrapped = await next_of(patient, "e2ee_key")
    assert (wrapped["from"], wrapped["key_id"], wrapped["wrapped"]) == (berg["id"], 0xFFFFFFFF, WRAPPED)
    assert "extra" not in wrapped
    with pytest.raises(TimeoutError):  # addressed to Erika only
        await next_of(doctor, "e2ee_key", within=0.3)
    # Erika acknowledges the key: back to the sender only, with the key id and nothing else.
    await patient.send_json({"type": "e2ee_ack", "to": berg["id"], "to_session": berg["session"],
                             "key_id": 0xFFFFFFFF, "wrapped": WRAPPED})
    ack = await next_of(doctor, "e2ee_ack")
    assert ack == {"type": "e2ee_ack", "from": erika["id"], "session": erika["session"],
                   "to_session": berg["session"], "key_id": 0xFFFFFFFF}
    with pytest.raises(TimeoutError):
        await next_of(patient, "e2ee_ack", within=0.3)

    sealed = base64.b64encode(b"\x01" * 60).decode()
    await patient.send_json({"type": "sealed_chat", "sealed": sealed})
    for socket in (doctor, patient):
        said = await next_of(socket, "chat")
        assert said["sealed"] == sealed and "text" not in said and said["from"] == erika["id"]

    # Mute state sealed like chat: passed on as it came, nothing of it kept with the seat.
    sealed_state = base64.b64encode(b"\x02" * 63).decode()
    await patient.send_json({"type": "sealed_mute", "sealed": sealed_state})
    for socket in (doctor, patient):
        muted = await next_of(socket, "mute")
        assert muted == {"type": "mute", "from": erika["id"], "sealed": sealed_state}


BAD_KEYS = [
    {"type": "e2ee_public", "to": "u1", "keys": {"x25519": X25519}},  # P-256 is always there
    {"type": "e2ee_public", "to": "u1", "keys": {"p256": X25519}},  # the wrong size
    {"type": "e2ee_public", "to": "u1", "keys": {"p256": P256, "rsa": P256}},
    {"type": "e2ee_public", "to": "u1", "keys": {"p256": P256[:-4] + "!!!!"}},
    {"type": "e2ee_public", "to": "u1", "keys": "p256"},
    {"type": "e2ee_key", "to": "u1", "key_id": -1, "wrapped": WRAPPED},
    {"type": "e2ee_key", "to": "u1", "key_id": 2 ** 32, "wrapped": WRAPPED},
    {"type": "e2ee_key", "to": "u1", "key_id": True, "wrapped": WRAPPED},
    {"type": "e2ee_key", "to": "u1", "key_id": 1, "wrapped": WRAPPED[:-8]},
    {"type": "e2ee_key", "to": "u1", "key_id": 1, "wrapped": "*" * 80},
    {"type": "e2ee_ack", "to": "u1", "key_id": -1},
    {"type": "e2ee_ack", "to": "u1", "key_id": "1"},
    {"type": "e2ee_ack", "to": "u1"},
    {"type": "sealed_chat", "sealed": "A" * (call_protocol.SEALED_CHAT_CHARS + 4)},
    {"type": "sealed_chat", "sealed": "not base64"},
    {"type": "sealed_mute", "sealed": "A" * (call_protocol.SEALED_MUTE_CHARS + 4)},
    {"type": "sealed_mute", "sealed": "not base64"},
]


async def test_malformed_keys_and_sealed_chat_get_errors(in_call):
    doctor, _ = in_call
    for bad in BAD_KEYS:
        await doctor.send_json(bad)
        assert (await next_of(doctor, "error"))["code"] == "invalid_field", bad


async def test_keys_for_someone_outside_the_call_are_refused(in_call):
    doctor, _ = in_call
    await doctor.send_json({"type": "e2ee_key", "to": "u999", "key_id": 1, "wrapped": WRAPPED})
    assert (await next_of(doctor, "error"))["code"] == "unknown_peer"
    await doctor.send_json({"type": "e2ee_ack", "to": "u999", "key_id": 1})
    assert (await next_of(doctor, "error"))["code"] == "unknown_peer"
