"""Real aiortc peers for the relay tests: a publisher with a small synthetic VP8
camera and a silent Opus microphone, and subscribers that decode what arrives."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from fractions import Fraction

import av
from aiortc import (
    AudioStreamTrack,
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from smartpractice.rtc import RelayRoom
from tests.helpers import next_of

WIDTH, HEIGHT = 160, 120  # small, so the publisher's encoder costs little


class SmallCamera(VideoStreamTrack):
    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=WIDTH, height=HEIGHT)
        shade = pts // 3000 % 200
        for plane in frame.planes:
            plane.update(bytes([shade]) * plane.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        return frame


class Peer:
    def __init__(self, ice_servers: list[RTCIceServer] | None = None) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers or []))
        self.frames = {"audio": 0, "video": 0}
        self.sizes: set[tuple[int, int]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._consume)

    def _consume(self, track) -> None:  # noqa: ANN001
        async def read() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    frame = await track.recv()
                    self.frames[track.kind] += 1
                    if track.kind == "video":
                        self.sizes.add((frame.width, frame.height))
        self._tasks.append(asyncio.ensure_future(read()))

    def transceiver(self, kind: str):  # noqa: ANN201
        return next(t for t in self.pc.getTransceivers() if t.kind == kind)

    async def attach(self, room: RelayRoom, participant_id: str) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await room.attach(participant_id, self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def publisher(ice_servers: list[RTCIceServer] | None = None) -> Peer:
    peer = Peer(ice_servers)
    peer.pc.addTrack(SmallCamera())
    peer.pc.addTrack(AudioStreamTrack())
    return peer


def subscriber(ice_servers: list[RTCIceServer] | None = None) -> Peer:
    peer = Peer(ice_servers)
    peer.pc.addTransceiver("video", direction="recvonly")
    peer.pc.addTransceiver("audio", direction="recvonly")
    return peer


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - counters other tasks advance
            await asyncio.sleep(0.05)


class OpaqueFrames(MediaStreamTrack):
    """What a browser with end-to-end encryption sends: VP8 frames whose first bytes
    (10 of a keyframe, 3 of a delta frame) are clear and the rest is ciphertext,
    which no decoder could read. aiortc's sender only packetizes them."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.sent: set[bytes] = set()
        self._index = 0

    async def recv(self) -> av.Packet:
        await asyncio.sleep(1 / 30)
        if self._index % 30 == 0:
            clear = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0xA0, 0x00, 0x78, 0x00])
        else:
            clear = bytes([0x11, 0x02, 0x00])
        frame = clear + os.urandom(400)
        self.sent.add(frame)
        packet = av.Packet(frame)
        packet.pts, packet.time_base = self._index * 3000, Fraction(1, 90000)
        self._index += 1
        return packet


async def relay_offer(socket, peer: Peer, purpose: str, receive_from: list[str]) -> None:
    """`peer`'s offer for the relay over a participant's call socket, and the answer applied."""
    await peer.pc.setLocalDescription(await peer.pc.createOffer())
    await socket.send_json({"type": "relay_offer", "purpose": purpose, "sdp": peer.pc.localDescription.sdp,
                            "receive_from": receive_from})
    answer = await next_of(socket, "relay_answer", within=10)
    await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
