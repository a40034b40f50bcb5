"""Packets the publisher sends again (RTX) reach exactly the subscribers whose stream
misses them: once each, never to a subscriber who already has the packet or who joined
after it. Real aiortc peers over loopback, as in tests/test_relay.py."""

from __future__ import annotations

import asyncio

import aioice.stun
import pytest
from aiortc.rtp import RtpPacket, is_rtcp

from smartpractice.rtc import Relay, hooks
from tests.rtc_peers import Peer, SmallCamera, subscriber, until


@pytest.fixture(autouse=True)
def short_ice_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.stun, "RETRY_MAX", 1)
    monkeypatch.setattr(aioice.stun, "RETRY_RTO", 0.1)


class SlowCamera(SmallCamera):
    """About five frames a second, so the publisher's history of 128 packets (aiortc's
    RTP_HISTORY_SIZE) still holds a packet from before a subscriber joined."""

    async def recv(self):  # noqa: ANN201
        frame = await super().recv()
        await asyncio.sleep(0.2)
        return frame


class Copies:
    """What a subscriber receives of one publisher packet, sent as it was or as RTX."""

    def __init__(self, peer: Peer) -> None:
        self.payloads: list[bytes] = []
        self.media_type: int | None = None
        receiver = peer.transceiver("video").receiver
        stock = receiver._handle_rtp_packet

        async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
            if self.media_type is None:
                self.media_type = packet.payload_type
            # RTX carries the original sequence number in front of the payload.
            retransmission = packet.payload_type != self.media_type
            self.payloads.append(packet.payload[2:] if retransmission else packet.payload)
            await stock(packet, arrival_time_ms)

        receiver._handle_rtp_packet = handle

    def of(self, payload: bytes) -> int:
        return self.payloads.count(payload)


class PublisherTap:
    """The publisher's video packets on their way to the relay: the last one's sequence
    number and payload, and one packet to lose."""

    def __init__(self, peer: Peer) -> None:
        self.sender = peer.transceiver("video").sender
        transport = self.sender.transport
        self.ssrc = hooks.sender_ssrcs(self.sender)[0].to_bytes(4, "big")
        self.sent: dict[int, bytes] = {}
        self.lose_next = False
        self.lost: int | None = None
        self.last: int | None = None
        stock = transport._send_rtp

        async def send(data: bytes) -> None:
            if not is_rtcp(data) and data[8:12] == self.ssrc:
                sequence_number = int.from_bytes(data[2:4], "big")
                self.sent[sequence_number] = RtpPacket.parse(data).payload
                self.last = sequence_number
                if self.lose_next:
                    self.lose_next, self.lost = False, sequence_number
                    return
            await stock(data)

        transport._send_rtp = send

    def answer_every_nack_twice(self) -> None:
        stock = self.sender._retransmit

        async def twice(sequence_number: int) -> None:
            await stock(sequence_number)
            await stock(sequence_number)

        self.sender._retransmit = twice


def slow_publisher() -> Peer:
    peer = Peer()
    peer.pc.addTrack(SlowCamera())
    return peer


@pytest.fixture
async def relay_room():
    relay = Relay()
    peers: list[Peer] = []

    async def join(peer: Peer, name: str) -> Peer:
        peers.append(peer)
        await peer.attach(relay.room("consultation-3"), name)
        return peer

    try:
        yield relay, join
    finally:
        for peer in peers:
            await peer.close()
        await relay.close()


def video_source(room):  # noqa: ANN001, ANN201 - RelayRoom -> Source
    return next(s for s in room.participant("pub").sources if s.kind == "video")


async def test_a_packet_lost_before_the_relay_reaches_each_subscriber_once(relay_room):
    """Lost between publisher and relay: every subscriber missed it. The publisher answers
    each NACK twice (the relay's and the subscribers'), and still each subscriber gets
    exactly one copy."""
    relay, join = relay_room
    room = relay.room("consultation-3")
    pub = await join(slow_publisher(), "pub")
    tap = PublisherTap(pub)
    subscribers = {name: await join(subscriber(), name) for name in ("sub1", "sub2")}
    copies = {name: Copies(peer) for name, peer in subscribers.items()}
    await until(lambda: all(peer.frames["video"] >= 3 for peer in subscribers.values()), within=20)
    source = video_source(room)
    tap.answer_every_nack_twice()
    tap.lose_next = True
    await until(lambda: tap.lost is not None, within=10)
    lost = tap.sent[tap.lost]
    await until(lambda: all(c.of(lost) for c in copies.values()) and source.retransmissions_received >= 2,
                within=15)
    await asyncio.sleep(1.0)  # time for any further copy to arrive
    assert {name: c.of(lost) for name, c in copies.items()} == {"sub1": 1, "sub2": 1}
    for forward in source.forwards:
        assert forward.retransmitted >= 1, forward.subscriber_id
    figures = relay.statistics()
    assert figures["repairs_received"] >= 2 and figures["packets_resent"] >= 2, figures


async def test_a_repair_goes_to_no_one_who_has_the_packet_or_joined_after_it(relay_room):
    """The publisher sends a packet again that sub1 received and that went out before sub2
    joined: the relay takes it in and passes it to neither."""
    relay, join = relay_room
    room = relay.room("consultation-3")
    pub = await join(slow_publisher(), "pub")
    tap = PublisherTap(pub)
    sub1 = await join(subscriber(), "sub1")
    await until(lambda: sub1.frames["video"] >= 3, within=20)
    early = tap.last
    sub2 = await join(subscriber(), "sub2")
    copies = {"sub1": Copies(sub1), "sub2": Copies(sub2)}
    await until(lambda: sub2.frames["video"] >= 2, within=20)
    source = video_source(room)
    before = source.retransmissions_received
    await tap.sender._retransmit(early)
    await until(lambda: source.retransmissions_received > before, within=10)
    await asyncio.sleep(1.0)
    assert {name: c.of(tap.sent[early]) for name, c in copies.items()} == {"sub1": 0, "sub2": 0}
    assert [f.retransmitted for f in source.forwards] == [0, 0]
