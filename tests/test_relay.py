"""The relay with real aiortc peers over loopback: packets are forwarded, never
decoded, and feedback (PLI, NACK, REMB) travels between subscribers and publisher."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

import aioice.stun
import aiortc
import pytest
from aiortc import RTCRtpReceiver

from smartpractice.rtc import Relay
from smartpractice.rtc import hooks
from smartpractice.rtc.keyframes import is_vp8_keyframe_start
from tests.rtc_peers import HEIGHT, WIDTH, publisher, subscriber, until


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
