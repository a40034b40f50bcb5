"""The relay with real aiortc peers over loopback: packets are forwarded, never
decoded, and feedback (PLI, NACK, REMB) travels between subscribers and publisher."""

from __future__ import annotations

import asyncio
import re
import threading
import uuid
from pathlib import Path

import aioice.stun
import aiortc
import pytest
from aiortc import RTCRtpReceiver, RTCRtpSender, RTCSessionDescription
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, is_rtcp, pack_remb_fci

from smartpractice.rtc import Relay, candidates, hooks
from smartpractice.rtc.hooks import guard
from smartpractice.rtc.keyframes import is_vp8_keyframe_start
from tests.rtc_peers import HEIGHT, WIDTH, OpaqueFrames, Peer, publisher, subscriber, until


@pytest.fixture(autouse=True)
def short_ice_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    # As aiortc's own tests do: loopback needs no patience.
    monkeypatch.setattr(aioice.stun, "RETRY_MAX", 1)
    monkeypatch.setattr(aioice.stun, "RETRY_RTO", 0.1)


@pytest.fixture
async def relay():
    relay = Relay()
    yield relay
    await relay.close()


@pytest.fixture
async def call(relay):
    """A room with one publisher and two subscribers receiving it."""
    room = relay.room("consultation-1")
    peers = {"pub": publisher(), "sub1": subscriber(), "sub2": subscriber()}
    try:
        for name, peer in peers.items():
            await peer.attach(room, name)
        await until(lambda: all(peers[s].frames["video"] >= 5 and peers[s].frames["audio"] >= 5
                                for s in ("sub1", "sub2")))
        yield room, peers
    finally:
        for peer in peers.values():
            await peer.close()


def decoder_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.endswith("-decoder"))


async def test_publisher_reaches_two_subscribers_without_the_relay_decoding(call):
    room, peers = call
    for name in ("sub1", "sub2"):
        assert peers[name].sizes == {(WIDTH, HEIGHT)}
    relay_receivers = [s.receiver for pid in room.participant_ids
                       for s in room.participant(pid).sources]
    assert len(relay_receivers) == 2  # the publisher's video and audio
    for receiver in relay_receivers:
        assert hooks.is_taken_over(receiver)
        assert not hooks.decoder_started(receiver)
        assert receiver.track._queue.empty()
    # Only the two subscribers decode (video and audio each); the relay never does.
    assert decoder_threads() == 4


def relayed_ssrc(peer) -> int:  # noqa: ANN001
    sources = peer.transceiver("video").receiver.getSynchronizationSources()
    return sources[0].source


async def test_subscriber_pli_reaches_the_publisher_throttled(call):
    room, peers = call
    sender = peers["pub"].transceiver("video").sender
    requests = []
    stock = sender._send_keyframe
    sender._send_keyframe = lambda: (requests.append(1), stock())
    source = next(s for s in room.participant("pub").sources if s.kind == "video")
    await asyncio.sleep(0.6)  # past the throttle of the joiners' own requests
    before = source.keyframe_requests_sent

    receiver = peers["sub1"].transceiver("video").receiver
    for _ in range(3):  # a burst of PLIs from both subscribers ...
        await receiver._send_rtcp_pli(relayed_ssrc(peers["sub1"]))
        await peers["sub2"].transceiver("video").receiver._send_rtcp_pli(
            relayed_ssrc(peers["sub2"]))
    await until(lambda: requests, within=15)
    await asyncio.sleep(0.2)
    # ... becomes one request to the publisher
    assert source.keyframe_requests_sent == before + 1
    assert len(requests) == 1


async def test_subscriber_nack_is_answered_from_history(call):
    room, peers = call
    receiver = peers["sub1"].transceiver("video").receiver
    stock = receiver._handle_rtp_packet
    seen = {"pt": None, "dropped": None, "retransmitted": set()}

    async def lossy(packet, arrival_time_ms):  # noqa: ANN001
        if seen["pt"] is None:
            seen["pt"] = packet.payload_type
        if packet.payload_type != seen["pt"]:  # RTX: the original sequence number leads
            seen["retransmitted"].add(int.from_bytes(packet.payload[:2], "big"))
        elif seen["dropped"] is None:
            seen["dropped"] = packet.sequence_number
            return  # lost on the way to the subscriber
        await stock(packet, arrival_time_ms)

    receiver._handle_rtp_packet = lossy
    await until(lambda: seen["retransmitted"], within=15)
    assert seen["retransmitted"] == {seen["dropped"]}
    forward = next(f for f in room.participant("sub1").forwards if f.source.kind == "video")
    assert forward.retransmitted == 1


async def test_loss_on_the_publisher_path_is_nacked_upstream(call):
    room, peers = call
    transport = peers["pub"].transceiver("video").sender.transport
    video_ssrc, _ = hooks.sender_ssrcs(peers["pub"].transceiver("video").sender)
    video_ssrc = video_ssrc.to_bytes(4, "big")
    stock = transport._send_rtp
    dropped = []

    async def lossy(data: bytes) -> None:
        if not dropped and not is_rtcp(data) and data[8:12] == video_ssrc:
            dropped.append(int.from_bytes(data[2:4], "big"))
            return  # lost between publisher and relay
        await stock(data)

    sender = peers["pub"].transceiver("video").sender
    retransmitted = []
    stock_retransmit = sender._retransmit

    async def retransmit(sequence_number: int) -> None:
        retransmitted.append(sequence_number)
        await stock_retransmit(sequence_number)

    sender._retransmit = retransmit
    transport._send_rtp = lossy
    source = next(s for s in room.participant("pub").sources if s.kind == "video")
    before = source.nacks_sent
    await until(lambda: retransmitted, within=15)
    assert source.nacks_sent > before
    assert dropped[0] in retransmitted


async def test_smallest_subscriber_estimate_goes_upstream(call):
    room, peers = call
    sender = peers["pub"].transceiver("video").sender
    estimates = []
    stock = sender._handle_rtcp_packet

    async def handle(packet) -> None:  # noqa: ANN001
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            estimates.append(packet)
        await stock(packet)

    sender._handle_rtcp_packet = handle
    # The subscribers' own estimators would overwrite the figures under test (low ones,
    # on a loaded machine): they are silenced, and the test's estimates repeated.
    send = {}
    for name in ("sub1", "sub2"):
        receiver = peers[name].transceiver("video").receiver
        send[name] = receiver._send_rtcp

        async def without_remb(packet, own=send[name]) -> None:  # noqa: ANN001
            if not (isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP):
                await own(packet)

        receiver._send_rtcp = without_remb
    source = next(s for s in room.participant("pub").sources if s.kind == "video")
    async with asyncio.timeout(15):
        while source.remb_sent != 120_000:
            for name, bitrate in (("sub1", 300_000), ("sub2", 120_000)):
                await send[name](RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0,
                                                fci=pack_remb_fci(bitrate, [relayed_ssrc(peers[name])])))
            await asyncio.sleep(0.2)
    ssrc, _ = hooks.sender_ssrcs(sender)
    await until(lambda: any(p.fci == pack_remb_fci(120_000, [ssrc])
                            for p in estimates), within=15)


async def test_detached_subscriber_stops_receiving_and_others_continue(call):
    room, peers = call
    await room.detach("sub2")
    assert room.participant_ids == ["pub", "sub1"]
    await asyncio.sleep(0.3)  # packets already in flight
    sub1_before, sub2_before = peers["sub1"].frames["video"], peers["sub2"].frames["video"]
    await asyncio.sleep(1.0)
    assert peers["sub1"].frames["video"] >= sub1_before + 15
    assert peers["sub2"].frames["video"] == sub2_before
    source = next(s for s in room.participant("pub").sources if s.kind == "video")
    assert [f.subscriber_id for f in source.forwards] == ["sub1"]


async def test_rooms_do_not_leak_into_each_other(relay):
    pub, other = publisher(), subscriber()
    try:
        await pub.attach(relay.room("a"), "pub")
        await other.attach(relay.room("b"), "other")
        await asyncio.sleep(1.5)
        assert other.frames == {"audio": 0, "video": 0}
        assert relay.room("b").sources() == []
        assert sorted(relay.room_names) == ["a", "b"]
    finally:
        await pub.close()
        await other.close()


async def test_last_participant_leaving_removes_the_room(relay):
    pub = publisher()
    try:
        await pub.attach(relay.room("a"), "pub")
        await relay.room("a").detach("pub")
        assert relay.room_names == []
    finally:
        await pub.close()


@pytest.fixture
def fresh_hook_check():
    """The guard's finding is cached per process: these tests break aiortc on
    purpose, so each looks afresh and leaves no broken finding behind."""
    hooks.hook_problems.cache_clear()
    yield
    hooks.hook_problems.cache_clear()


def test_aiortc_pin_matches_the_hooks(fresh_hook_check):
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    pinned = re.search(r'"aiortc==([^"]+)"', pyproject).group(1)
    assert pinned == hooks.AIORTC_VERSION == aiortc.__version__
    assert hooks.hook_problems() == ()
    hooks.check_hooks()


async def test_the_guard_checks_what_aiortc_builds(fresh_hook_check):
    """On the pinned version every private name the hooks use is there on real
    objects; with one removed from those objects, the guard names it."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        transceiver = pc.addTransceiver("video")
        assert hooks.find_problems(transceiver) == []
        del transceiver.receiver.transport._rx_srtp
        transceiver.sender._send_rtcp = None
        assert hooks.find_problems(transceiver) == [
            "RTCRtpSender._send_rtcp is no longer a method",
            "RTCDtlsTransport._rx_srtp is missing"]
    finally:
        await pc.close()


def test_a_moved_private_hook_fails_loudly(monkeypatch: pytest.MonkeyPatch, fresh_hook_check):
    monkeypatch.delattr(RTCRtpReceiver, "_handle_rtp_packet")
    with pytest.raises(hooks.HookMismatch,
                       match=r"aiortc 1\.16\.0 .*RTCRtpReceiver\._handle_rtp_packet is missing"):
        Relay()


def test_a_vanished_instance_attribute_fails_loudly(monkeypatch: pytest.MonkeyPatch,
                                                     fresh_hook_check):
    """Attributes aiortc sets in __init__ are not on the class: only a constructed
    sender shows that its RTX SSRC is gone."""
    stock_init = RTCRtpSender.__init__

    def init(self, *args, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003
        stock_init(self, *args, **kwargs)
        del self._rtx_ssrc

    monkeypatch.setattr(RTCRtpSender, "__init__", init)
    with pytest.raises(hooks.HookMismatch, match=r"RTCRtpSender\._rtx_ssrc is missing"):
        Relay()


def test_a_router_that_needs_more_than_the_ssrc_fails_loudly(monkeypatch: pytest.MonkeyPatch,
                                                             fresh_hook_check):
    """RtpInput asks aiortc's router with the SSRC and payload type only."""
    from aiortc.rtcdtlstransport import RtpRouter

    stock = RtpRouter.route_rtp
    monkeypatch.setattr(RtpRouter, "route_rtp",
                        lambda self, packet: stock(self, packet) if packet.marker else None)
    with pytest.raises(hooks.HookMismatch, match="route_rtp"):
        Relay()


def test_a_changed_libsrtp_binding_fails_loudly(fresh_hook_check):
    """The compiled datagram path calls pylibsrtp's libsrtp by address: with the
    addresses swapped, as a changed binding could leave them, no Relay is made."""
    from pylibsrtp._binding import ffi, lib

    from smartpractice.rtc import _datagrams

    protect, unprotect = (int(ffi.cast("uintptr_t", ffi.addressof(lib, name)))
                          for name in ("srtp_protect", "srtp_unprotect"))
    _datagrams.set_srtp_functions(unprotect, protect)
    try:
        with pytest.raises(hooks.HookMismatch, match="does not unprotect in pylibsrtp.*"
                                                     "does not unprotect through"):
            Relay()
    finally:
        _datagrams.set_srtp_functions(protect, unprotect)
    hooks.hook_problems.cache_clear()
    Relay()


def test_the_guard_runs_once_per_process(monkeypatch: pytest.MonkeyPatch, fresh_hook_check):
    built = []
    stock = guard._fresh_transceiver
    monkeypatch.setattr(guard, "_fresh_transceiver", lambda: built.append(1) or stock())
    Relay()
    Relay()
    assert built == [1]


@pytest.mark.parametrize(("payload", "keyframe"), [
    (bytes([0x10, 0x00]), True),                     # S=1, PID=0, P=0
    (bytes([0x10, 0x01]), False),                    # interframe
    (bytes([0x00, 0x00]), False),                    # not the start of a partition
    (bytes([0x90, 0x80, 0x81, 0x23, 0x00]), True),   # X, I with 15-bit picture ID
    (bytes([0x90, 0xE0, 0x12, 0x05, 0x40, 0x01]), False),  # X, I, L, T; P=1
    (bytes([0x90, 0xE0, 0x12, 0x05, 0x40, 0x9C]), True),
    (bytes([0x90]), False),                          # truncated descriptor
    (b"", False),
])
def test_vp8_keyframe_is_read_from_the_clear_leading_bytes(payload, keyframe):
    assert is_vp8_keyframe_start(payload) == keyframe
    # What follows the frame tag may be encrypted end to end; it is never read.
    if payload[1:]:
        assert is_vp8_keyframe_start(payload + bytes(range(200, 255))) == keyframe


@pytest.mark.parametrize("audio_level", [None, (True, 42)])
def test_forwarded_header_matches_what_aiortc_would_write(audio_level):
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpSendParameters
    from aiortc.rtp import HeaderExtensionsMap, RtpPacket

    from smartpractice.rtc.rtp_header import ABS_SEND_TIME, AUDIO_LEVEL, MID, HeaderWriter

    parameters = RTCRtpSendParameters(muxId="1", headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=4, uri=MID),
        RTCRtpHeaderExtensionParameters(id=3, uri=ABS_SEND_TIME),
        RTCRtpHeaderExtensionParameters(id=1, uri=AUDIO_LEVEL),
    ])
    extensions = HeaderExtensionsMap()
    extensions.configure(parameters)
    packet = RtpPacket(payload_type=96, marker=1, sequence_number=65535,
                       timestamp=4_000_000_000, ssrc=0xDEADBEEF, payload=b"\x10opaque")
    packet.extensions.mid = "1"
    packet.extensions.abs_send_time = 0x123456
    packet.extensions.audio_level = audio_level
    # Values as they were on the wire: three bytes, and the level byte with its V bit.
    level_byte = None if audio_level is None else (audio_level[0] << 7) | audio_level[1]
    written = HeaderWriter(parameters).write(1, 96, 65535, 4_000_000_000, 0xDEADBEEF,
                                             bytes.fromhex("123456"), level_byte) + b"\x10opaque"
    assert written == packet.serialize(extensions)


async def test_late_joiner_gets_a_keyframe_at_once(call):
    room, peers = call
    await asyncio.sleep(1.0)  # well past the publisher's first keyframe
    late = subscriber()
    try:
        await late.attach(room, "late")
        # aiortc's encoder makes keyframes only on request: this proves the relay asked.
        await until(lambda: late.frames["video"] >= 5, within=15)
        assert late.sizes == {(WIDTH, HEIGHT)}
    finally:
        await late.close()


async def test_end_to_end_encrypted_frames_pass_unchanged(relay):
    """Only the clear leading bytes are ever read: the ciphertext arrives byte for byte."""
    room = relay.room("e2ee")
    pub, sub = Peer(), Peer()
    track = OpaqueFrames()
    pub.pc.addTransceiver(track, direction="sendonly")
    transceiver = sub.pc.addTransceiver("video", direction="recvonly")
    received: list[bytes] = []

    def keep(data: bytes) -> None:
        # after aiortc's 4-byte VP8 descriptor
        received.append(RtpPacket.parse(data).payload[4:])

    async def ignore(packet) -> None:  # noqa: ANN001
        return None

    # A subscriber that does not decode either, as a browser with E2EE would not.
    hooks.take_over_receiver_raw(transceiver.receiver, keep, ignore, lambda parameters: None)
    try:
        await pub.attach(room, "pub")
        await sub.attach(room, "sub")
        await until(lambda: len(received) >= 10, within=15)
        assert set(received) <= track.sent
        assert is_vp8_keyframe_start(bytes([0x90, 0x80, 0x80, 0x00]) + received[0])
    finally:
        await pub.close()
        await sub.close()


async def test_publisher_learns_its_round_trip_time_from_relay_reports(call):
    room, peers = call
    sender = peers["pub"].transceiver("video").sender

    async def round_trip_time():  # noqa: ANN202
        stats = await sender.getStats()
        remote = [s for s in stats.values() if s.type == "remote-inbound-rtp"]
        return remote[0].roundTripTime if remote else None

    # Sender reports go out every 0.5-1.5 s; the relay's next receiver report answers.
    async with asyncio.timeout(8):
        while (await round_trip_time()) is None:  # noqa: ASYNC110 - RTCP timers
            await asyncio.sleep(0.2)
    assert 0 <= await round_trip_time() < 0.5


async def test_relay_rtp_bypasses_aiortc_parsing(call):
    """Packets reach the subscribers without the relay's DTLS transports parsing
    them into RtpPackets (hooks.RtpInput), while RTCP still takes aiortc's path."""
    room, peers = call
    transports = {s.receiver.transport for s in room.participant("pub").sources}
    parsed, routed_rtcp = [], []
    for transport in transports:
        stock_rtp, stock_rtcp = transport._handle_rtp_data, transport._handle_rtcp_data

        async def rtp(data, arrival_time_ms, stock=stock_rtp) -> None:  # noqa: ANN001
            parsed.append(data)
            await stock(data, arrival_time_ms)

        async def rtcp(data, stock=stock_rtcp) -> None:  # noqa: ANN001
            routed_rtcp.append(data)
            await stock(data)

        transport._handle_rtp_data, transport._handle_rtcp_data = rtp, rtcp
    before = peers["sub1"].frames["video"]
    await until(lambda: peers["sub1"].frames["video"] >= before + 15 and routed_rtcp, within=15)
    assert parsed == []


def test_aioice_delivery_change_fails_loudly(monkeypatch: pytest.MonkeyPatch, fresh_hook_check):
    def datagram_received(self, data, addr) -> None:  # noqa: ANN001
        self.receiver.deliver(data)

    monkeypatch.setattr(aioice.ice.StunProtocol, "datagram_received", datagram_received)
    with pytest.raises(hooks.HookMismatch, match="data_received"):
        Relay()


def test_incoming_stream_counts_as_aiortc_does(monkeypatch: pytest.MonkeyPatch):
    """The relay's receive statistics and NACK list equal aiortc's own for the same
    packets: reordering, loss, duplicates and a sequence number wrap."""
    import random

    from aiortc import rtcrtpreceiver
    from aiortc.rtp import RtpPacket

    from smartpractice.rtc.statistics import IncomingStream

    clock = {"now": 1000.0}
    monkeypatch.setattr(rtcrtpreceiver.time, "time", lambda: clock["now"])
    rng = random.Random(7)
    sequence = []
    for n in range(3000):
        seq = (65000 + n) & 0xFFFF
        if rng.random() < 0.05:
            continue  # lost
        sequence.append(seq)
        if rng.random() < 0.03 and len(sequence) > 2:
            sequence[-1], sequence[-2] = sequence[-2], sequence[-1]  # reordered
        if rng.random() < 0.01:
            sequence.append((seq - rng.randrange(1, 60)) & 0xFFFF)  # late or duplicate
    sequence += [(sequence[-1] + 400) & 0xFFFF]  # a gap beyond the NACK window
    ours, theirs = IncomingStream(90000, track_losses=True), rtcrtpreceiver.StreamStatistics(90000)
    nacks = rtcrtpreceiver.NackGenerator()
    for seq in sequence:
        clock["now"] += rng.random() / 50
        timestamp = (seq // 4 * 3000) & 0xFFFFFFFF
        packet = RtpPacket(sequence_number=seq, timestamp=timestamp)
        theirs.add(packet)
        assert ours.add(seq, timestamp, clock["now"]) == nacks.add(packet)
        assert ours.missing == nacks.missing
        if rng.random() < 0.01:
            assert ours.fraction_lost() == theirs.fraction_lost
    assert (ours.max_seq, ours.cycles, ours.packets_received, ours.packets_lost, ours.jitter) == (
        theirs.max_seq, theirs.cycles, theirs.packets_received, theirs.packets_lost, theirs.jitter)


@pytest.mark.parametrize("two_byte_extensions", [False, True])
async def test_source_reads_headers_as_aiortc_does(two_byte_extensions):
    """CSRCs, padding, header extensions and RTX, which aiortc peers do not send
    but browsers may: what the relay forwards is what aiortc's parser reads."""
    from types import SimpleNamespace

    from aiortc.rtcrtpparameters import (
        RTCRtpCodecParameters,
        RTCRtpHeaderExtensionParameters,
        RTCRtpReceiveParameters,
        RTCRtpRtxParameters,
    )
    from aiortc.rtcrtpparameters import RTCRtpDecodingParameters as Encoding
    from aiortc.rtp import HeaderExtensionsMap, RtpPacket, wrap_rtx

    from smartpractice.rtc.rtp_header import ABS_SEND_TIME, AUDIO_LEVEL, MID
    from smartpractice.rtc.source import Source

    connection = SimpleNamespace(_nominated={})
    receiver = SimpleNamespace(transport=SimpleNamespace(transport=SimpleNamespace(
        _connection=connection)))
    source = Source("pub", "video", receiver, rtcp_ssrc=1)
    parameters = RTCRtpReceiveParameters(
        codecs=[RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96),
                RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=97,
                                      parameters={"apt": 96})],
        headerExtensions=[RTCRtpHeaderExtensionParameters(id=1, uri=MID),
                          RTCRtpHeaderExtensionParameters(id=3, uri=ABS_SEND_TIME),
                          RTCRtpHeaderExtensionParameters(id=5, uri=AUDIO_LEVEL)],
        encodings=[Encoding(ssrc=1111, payloadType=96, rtx=RTCRtpRtxParameters(ssrc=2222))])
    source._configure(parameters)
    extensions = HeaderExtensionsMap()
    extensions.configure(parameters)
    forwarded, repaired = [], []
    source.forwards.append(SimpleNamespace(forward=lambda *args: forwarded.append(args),
                                           repair=lambda *args: repaired.append(args)))
    try:
        packet = RtpPacket(payload_type=96, marker=1, sequence_number=7, timestamp=90_000,
                           ssrc=1111, payload=bytes([0x10, 0x02]) + b"opaque")
        packet.csrc = [5, 6]
        packet.extensions.mid = "0"
        packet.extensions.abs_send_time = 0xABCDEF
        packet.extensions.audio_level = (True, 33)
        packet.padding_size = 3
        data = packet.serialize(extensions)
        if two_byte_extensions:  # same elements, RFC 8285 section 4.3 layout
            from aiortc.rtp import pack_header_extensions
            profile, value = pack_header_extensions([(1, b"0"), (3, bytes.fromhex("abcdef")),
                                                     (5, bytes([0x80 | 33])), (20, b"xy")])
            assert profile == 0x1000
            data = (bytes([data[0]]) + data[1:12] + data[12:20] + profile.to_bytes(2, "big")
                    + (len(value) // 4).to_bytes(2, "big") + value
                    + packet.payload + bytes([0, 0, 3]))
        parsed = RtpPacket.parse(data, extensions)
        assert parsed.payload == packet.payload and parsed.csrc == [5, 6]
        source._handle_rtp(data)
        rtx = wrap_rtx(packet, payload_type=97, sequence_number=500, ssrc=2222)
        rtx.padding_size = 0
        source._handle_rtp(rtx.serialize(extensions))
        expected = ("vp8", 1, 7, 90_000, 1111, bytes.fromhex("abcdef"), 0x80 | 33,
                    packet.payload)
        assert [(args[0].lower(), *args[1:]) for args in forwarded] == [expected]
        assert [(args[0].lower(), *args[1:]) for args in repaired] == [expected]
        assert source.packets_received == 2 and source.retransmissions_received == 1
    finally:
        await source.close()


async def test_malformed_packets_are_dropped_quietly():
    """Truncated headers from a publisher are dropped without reaching subscribers."""
    from types import SimpleNamespace

    from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters

    from smartpractice.rtc.source import Source

    receiver = SimpleNamespace(transport=SimpleNamespace(transport=SimpleNamespace(
        _connection=SimpleNamespace(_nominated={}))))
    source = Source("pub", "video", receiver, rtcp_ssrc=1)
    source._configure(RTCRtpReceiveParameters(codecs=[RTCRtpCodecParameters(
        mimeType="video/VP8", clockRate=90000, payloadType=96)]))
    forwarded, repaired = [], []
    source.forwards.append(SimpleNamespace(forward=lambda *args: forwarded.append(args),
                                           repair=lambda *args: repaired.append(args)))
    header = bytes([0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9])
    try:
        for data in (bytes([0x83]) + header[1:],             # CSRCs beyond the end
                     bytes([0x90]) + header[1:] + b"\xbe",     # cut extension header
                     bytes([0x90]) + header[1:] + b"\xbe\xde\x00\x09",  # extension too long
                     bytes([0xa0]) + header[1:] + b"\x10\x50"):  # padding longer than payload
            source._handle_rtp(data)
        assert forwarded == []
        source._handle_rtp(header + b"\x10\x00")
        assert len(forwarded) == 1
    finally:
        await source.close()


async def test_h264_when_the_browsers_offer_only_that(relay):
    """Safari-era phones may offer H.264 alone: it is forwarded the same way, undecoded."""
    only_h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
    room = relay.room("consultation-h264")
    sender, receiver = publisher(), subscriber()
    for peer in (sender, receiver):
        peer.transceiver("video").setCodecPreferences(only_h264)
    try:
        await sender.attach(room, "pub")
        await receiver.attach(room, "sub")
        await until(lambda: receiver.frames["video"] >= 10, within=15)
        assert receiver.sizes == {(WIDTH, HEIGHT)}
        [source] = [s for s in room.participant("pub").sources if s.kind == "video"]
        assert not hooks.decoder_started(source.receiver)
        assert "H264" in receiver.pc.remoteDescription.sdp and "VP8" not in receiver.pc.remoteDescription.sdp
    finally:
        await sender.close()
        await receiver.close()


def behind_mdns_names(sdp: str) -> str:
    """The offer as Firefox writes it without a camera grant: each host address replaced
    by an mDNS name (a fresh `<uuid>.local`), complete with end-of-candidates."""
    hidden = re.sub(r"^(a=candidate:\S+ \d+ \S+ \d+ )\S+( \d+ typ host)",
                    lambda found: f"{found[1]}{uuid.uuid4()}.local{found[2]}", sdp, flags=re.M)
    assert ".local" in hidden and "a=end-of-candidates" in hidden
    return hidden


async def test_a_participant_known_only_by_mdns_names_is_reached_through_its_checks(relay):
    room = relay.room("consultation-mdns")
    sender, receiver = publisher(), subscriber()
    try:
        await sender.attach(room, "pub")
        await receiver.pc.setLocalDescription(await receiver.pc.createOffer())
        answer = await room.attach("sub", behind_mdns_names(receiver.pc.localDescription.sdp))
        await receiver.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await until(lambda: receiver.frames["video"] >= 5 and receiver.frames["audio"] >= 5, within=15)
        # The relay knows the address only from the subscriber's checks (peer reflexive).
        transport = room.participant("sub").pc.getTransceivers()[0].receiver.transport.transport
        assert {c.type for c in transport.getRemoteCandidates()} == {"prflx"}
    finally:
        await sender.close()
        await receiver.close()


async def test_a_participant_known_only_by_mdns_names_whose_checks_never_come_is_let_go(relay, monkeypatch):
    monkeypatch.setattr(candidates, "PEER_REFLEXIVE_SECONDS", 0.5)
    room = relay.room("consultation-mdns-silent")
    sender, silent = publisher(), subscriber()
    try:
        await sender.attach(room, "pub")
        await silent.pc.setLocalDescription(await silent.pc.createOffer())
        # The answer never reaches it, so it never checks.
        await room.attach("sub", behind_mdns_names(silent.pc.localDescription.sdp))
        await until(lambda: "sub" not in room.participant_ids, within=10)
        assert room.participant_ids == ["pub"]
    finally:
        await sender.close()
        await silent.close()


async def test_an_attach_overtaken_by_a_second_one_leaves_the_second_in_place(relay):
    """A page that attaches again before its first attach was answered (a reconnect on a
    bad line): the second's connection replaces the first's and stays, whatever becomes of
    the first attach, and its media reaches the others."""
    room = relay.room("consultation-twice")
    first, second, viewer = publisher(), publisher(), subscriber()
    try:
        offers = []
        for peer in (first, second):
            await peer.pc.setLocalDescription(await peer.pc.createOffer())
            offers.append(peer.pc.localDescription.sdp)
        overtaken = asyncio.create_task(room.attach("pub", offers[0]))
        while "pub" not in room.participant_ids:  # noqa: ASYNC110 - registered before its answer
            await asyncio.sleep(0)
        assert not overtaken.done()
        answer = await room.attach("pub", offers[1])
        await asyncio.gather(overtaken, return_exceptions=True)
        assert room.participant_ids == ["pub"]
        await second.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await viewer.attach(room, "sub")
        await until(lambda: viewer.frames["video"] >= 10, within=15)
    finally:
        for peer in (first, second, viewer):
            await peer.close()
