"""Real aiortc peers for the relay tests: a publisher with a small synthetic VP8
camera and a silent Opus microphone, and subscribers that decode what arrives."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from smartpractice.rtc import Room

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
    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
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

    async def attach(self, room: Room, participant_id: str) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await room.attach(participant_id, self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def publisher() -> Peer:
    peer = Peer()
    peer.pc.addTrack(SmallCamera())
    peer.pc.addTrack(AudioStreamTrack())
    return peer


def subscriber() -> Peer:
    peer = Peer()
    peer.pc.addTransceiver("video", direction="recvonly")
    peer.pc.addTransceiver("audio", direction="recvonly")
    return peer


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - counters other tasks advance
            await asyncio.sleep(0.05)
