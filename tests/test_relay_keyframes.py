"""Keyframe requests are deferred, never dropped: the relay's Source on its own, fed VP8
packets by hand, with the PLIs it sends counted. tests/test_relay_group.py shows the same
with aiortc cameras that make keyframes only when asked."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtcrtpparameters import RTCRtpDecodingParameters as Encoding
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPacket, RtcpPsfbPacket, RtpPacket

from smartpractice.rtc import keyframes
from smartpractice.rtc.keyframes import is_vp8_keyframe_start
from smartpractice.rtc.source import Source

INTERVAL = 0.2  # the throttle, shortened for the test
KEYFRAME = bytes([0x10, 0x00, 0x9D, 0x01, 0x2A])  # VP8 descriptor S=1, frame tag P=0
DELTA = bytes([0x10, 0x01, 0x00])  # frame tag P=1


class Subscriber:
    """A forward waiting for its first keyframe until one passes."""

    def __init__(self) -> None:
        self.waiting_for_keyframe = True

    def forward(self, codec_name: str, marker: int, sequence_number: int, timestamp: int, ssrc: int,
                abs_send_time: bytes | None, audio_level: int | None, payload: bytes) -> None:
        if is_vp8_keyframe_start(payload):
            self.waiting_for_keyframe = False


@pytest.fixture
async def camera(monkeypatch: pytest.MonkeyPatch):
    """A video Source and what it sends upstream: `send(payload)` plays the publisher."""
    monkeypatch.setattr(keyframes, "KEYFRAME_REQUEST_INTERVAL", INTERVAL)
    connection = SimpleNamespace(_nominated={})
    receiver = SimpleNamespace(transport=SimpleNamespace(transport=SimpleNamespace(_connection=connection)))
    source = Source("clinician", "video", receiver, rtcp_ssrc=1)
    source._configure(RTCRtpReceiveParameters(
        codecs=[RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)],
        encodings=[Encoding(ssrc=1111, payloadType=96)]))
    plis: list[float] = []
    loop = asyncio.get_running_loop()

    def send_rtcp(data: bytes) -> None:
        [packet] = RtcpPacket.parse(data)
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
            plis.append(loop.time())

    source._output = SimpleNamespace(send_rtcp=send_rtcp)
    sequence = iter(range(1, 10_000))

    def send(payload: bytes) -> None:
        number = next(sequence)
        source._handle_rtp(RtpPacket(payload_type=96, sequence_number=number, timestamp=3000 * number,
                                     ssrc=1111, payload=payload).serialize())

    try:
        yield source, send, plis
    finally:
        await source.close()


async def test_requests_inside_the_interval_become_one_deferred_request(camera):
    source, send, plis = camera
    send(DELTA)
    source.request_keyframe()
    source.request_keyframe()
    source.request_keyframe()
    assert len(plis) == 1
    await asyncio.sleep(INTERVAL * 1.5)
    # The two later requests were not dropped: one PLI at the end of the interval.
    assert len(plis) == 2
    assert plis[1] - plis[0] >= INTERVAL * 0.9
    await asyncio.sleep(INTERVAL * 2)
    assert len(plis) == 2  # nobody waits: no more requests


async def test_a_waiting_subscriber_is_asked_for_until_a_keyframe_comes(camera):
    """The publisher ignores the requests (lost, or a camera not ready): the relay asks
    again every interval, and stops once a keyframe has reached the subscriber."""
    source, send, plis = camera
    subscriber = Subscriber()
    source.forwards.append(subscriber)
    send(DELTA)
    source.request_keyframe()
    for _ in range(4):
        await asyncio.sleep(INTERVAL)
        send(DELTA)
    assert len(plis) >= 4
    assert all(later - earlier >= INTERVAL * 0.9 for earlier, later in zip(plis, plis[1:], strict=False))
    send(KEYFRAME)
    assert not subscriber.waiting_for_keyframe
    asked = len(plis)
    await asyncio.sleep(INTERVAL * 3)
    assert len(plis) == asked
    assert source.keyframe_requests_sent == len(plis)


async def test_a_request_before_the_first_packet_goes_out_with_it(camera):
    source, send, plis = camera
    source.forwards.append(Subscriber())
    source.request_keyframe()
    await asyncio.sleep(INTERVAL * 2)
    assert plis == []  # nothing to address it to yet
    send(DELTA)
    assert len(plis) == 1


async def test_once_a_keyframe_has_come_the_next_request_goes_out_at_once(camera):
    """The interval holds only while a request is unanswered: a subscriber who comes up
    just after a keyframe is not kept waiting for the rest of it."""
    source, send, plis = camera
    send(DELTA)
    source.request_keyframe()
    send(KEYFRAME)
    source.request_keyframe()
    assert len(plis) == 2
    source.request_keyframe()  # unanswered again: deferred
    assert len(plis) == 2
    await asyncio.sleep(INTERVAL * 1.5)
    assert len(plis) == 3
