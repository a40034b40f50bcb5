"""Relay benchmark: aiortc's stock MediaRelay against the packet-forwarding relay.

    python benchmarks/relay.py                      # all four runs, about two minutes
    python benchmarks/relay.py --packet-publishers 20 --seconds 20

N publishers send a pre-encoded 640x480 VP8 clip (about 1 Mbit/s, 30 fps, a keyframe
every 2 s) to the relay, each in its own room with 1 or 4 subscribers that count
packets and frames but never decode. Publishers and subscribers live in this process;
the relay runs in a child process, whose CPU time (all threads, so the stock
relay's encoder threads count) is measured over a window after a warm-up.
Streams per core = forwarded streams / relay CPU share in the window. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from fractions import Fraction

import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay

from smartpractice.rtc import Relay, hooks

FPS = 30
WIDTH, HEIGHT = 640, 480
BITRATE = 1_000_000
CONFIG = RTCConfiguration(iceServers=[])


def encode_clip(frames: int = 2 * FPS) -> list[bytes]:
    """VP8 frames of a moving pattern with some noise, so the encoder spends its bits."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.bit_rate, codec.time_base, codec.gop_size = BITRATE, Fraction(1, FPS), frames
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    noise = os.urandom(WIDTH * HEIGHT)
    encoded = []
    for i in range(frames):
        frame = av.VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        luma = bytes((x + 4 * i) & 0xFF for x in range(256)) * (WIDTH * HEIGHT // 256)
        shift = (i * 4801) % len(noise)
        rows = HEIGHT // 16 * WIDTH  # a strip of moving noise keeps the encoder busy
        frame.planes[0].update(luma[:-rows] + (noise[shift:] + noise[:shift])[:rows])
        frame.planes[1].update(bytes([128 + i % 64]) * frame.planes[1].buffer_size)
        frame.planes[2].update(bytes([128]) * frame.planes[2].buffer_size)
        frame.pts = i
        encoded += [bytes(p) for p in codec.encode(frame)]
    encoded += [bytes(p) for p in codec.encode(None)]
    return encoded


class ClipTrack(MediaStreamTrack):
    """Hands aiortc's sender encoded frames: it only packetizes them."""

    kind = "video"

    def __init__(self, clip: list[bytes]) -> None:
        super().__init__()
        self._clip, self._index, self._start = clip, 0, None

    async def recv(self) -> av.Packet:
        self._start = self._start or time.monotonic()
        delay = self._start + self._index / FPS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(self._clip[self._index % len(self._clip)])
        packet.pts, packet.time_base = self._index * 3000, Fraction(1, 90000)
        self._index += 1
        return packet


class Counter:
    """A subscriber's view of one stream: packets, frames (marker bits), losses."""

    def __init__(self) -> None:
        self.packets = self.frames = 0
        self.first: int | None = None
        self.highest: int | None = None  # extended sequence number

    async def on_rtp(self, packet) -> None:  # noqa: ANN001
        self.packets += 1
        self.frames += packet.marker
        if self.highest is None:
            self.first = self.highest = packet.sequence_number
        else:
            delta = (packet.sequence_number - self.highest) & 0xFFFF
            if delta < 0x8000:
                self.highest += delta

    def snapshot(self) -> tuple[int, int, int]:
        # Before the first packet, the stream "starts" just before it arrives.
        if self.highest is None:
            return 0, 0, -1
        return self.packets, self.frames, self.highest


async def nothing(*args: object) -> None:
    return None


def serve(mode: str, conn) -> None:  # noqa: ANN001
    asyncio.run(_serve(mode, conn))


async def _serve(mode: str, conn) -> None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    relay, stock, pcs, tracks = Relay(), MediaRelay(), [], {}
    while True:
        message = await loop.run_in_executor(None, conn.recv)
        if message[0] == "cpu":
            conn.send(time.process_time())
            continue
        if message[0] == "stop":
            await relay.close()
            await asyncio.gather(*(pc.close() for pc in pcs))
            conn.send(None)
            return
        role, room, participant, offer = message
        if mode == "packet":
            conn.send(await relay.room(room).attach(participant, offer))
            continue
        pc = RTCPeerConnection(CONFIG)
        pcs.append(pc)
        pc.on("track", lambda track, room=room: tracks.setdefault(room, track))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        if role == "subscribe":
            pc.addTrack(stock.subscribe(tracks[room]))
        await pc.setLocalDescription(await pc.createAnswer())
        conn.send(pc.localDescription.sdp)


async def run(mode: str, publishers: int, fanout: int, clip: list[bytes],
              warmup: float, seconds: float) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=serve, args=(mode, child))
    process.start()

    async def ask(*message: object):  # noqa: ANN202
        parent.send(message)
        return await loop.run_in_executor(None, parent.recv)

    async def connect(pc: RTCPeerConnection, role: str, room: str, name: str) -> None:
        await pc.setLocalDescription(await pc.createOffer())
        answer = await ask(role, room, name, pc.localDescription.sdp)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    pcs, counters = [], []
    for i in range(publishers):
        pc = RTCPeerConnection(CONFIG)
        pc.addTransceiver(ClipTrack(clip), direction="sendonly")
        pcs.append(pc)
        await connect(pc, "publish", f"room-{i}", f"pub-{i}")
        for j in range(fanout):
            pc = RTCPeerConnection(CONFIG)
            transceiver = pc.addTransceiver("video", direction="recvonly")
            counter = Counter()
            # The subscriber must not decode either: count packets in place of it.
            hooks.take_over_receiver(transceiver.receiver, counter.on_rtp, nothing, lambda p: None)
            pcs.append(pc)
            counters.append(counter)
            await connect(pc, "subscribe", f"room-{i}", f"sub-{i}-{j}")
    await asyncio.sleep(warmup)
    before = [c.snapshot() for c in counters]
    cpu_before, own_before, start = await ask("cpu"), time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    after = [c.snapshot() for c in counters]
    cpu_after, own_after = await ask("cpu"), time.process_time()
    elapsed = time.monotonic() - start
    await ask("stop")
    process.join()
    await asyncio.gather(*(pc.close() for pc in pcs))

    packets = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
    frames = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
    expected = sum(a[2] - (b[2] if b[2] >= 0 else c.first - 1)
                   for a, b, c in zip(after, before, counters, strict=True) if a[2] >= 0)
    streams = publishers * fanout
    cpu_share = (cpu_after - cpu_before) / elapsed
    return {
        "streams": streams,
        "relay_cpu_share": cpu_share,
        "us_per_packet": (cpu_after - cpu_before) / max(packets, 1) * 1e6,
        "streams_per_core": streams / cpu_share if cpu_share else float("inf"),
        "fps": frames / elapsed / streams,
        "loss": 1 - packets / expected if expected else 1.0,
        "client_cpu_share": (own_after - own_before) / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stock-publishers", type=int, default=1)
    parser.add_argument("--packet-publishers", type=int, default=12)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--modes", default="stock,packet", help="comma-separated")
    parser.add_argument("--fanouts", default="1,4", help="comma-separated")
    args = parser.parse_args()
    clip = encode_clip()
    clip_rate = sum(map(len, clip)) * 8 / (len(clip) / FPS) / 1e6
    print(f"clip: {len(clip)} VP8 frames {WIDTH}x{HEIGHT} at {FPS} fps, {clip_rate:.2f} Mbit/s")
    results = {}
    modes = args.modes.split(",")
    fanouts = [int(f) for f in args.fanouts.split(",")]
    publishers_of = {"stock": args.stock_publishers, "packet": args.packet_publishers}
    for mode in modes:
        publishers = publishers_of[mode]
        for fanout in fanouts:
            r = asyncio.run(run(mode, publishers, fanout, clip, args.warmup, args.seconds))
            results[mode, fanout] = r
            print(f"{mode:6} fan-out {fanout}: {r['streams']:3} streams, relay CPU "
                  f"{r['relay_cpu_share']:.2f} core, {r['us_per_packet']:7.1f} µs/packet, "
                  f"{r['streams_per_core']:6.1f} streams/core, {r['fps']:5.1f} fps delivered, "
                  f"loss {r['loss']:.2%} (clients {r['client_cpu_share']:.2f} core)")
    for fanout in fanouts if len(modes) == 2 else ():
        ratio = results["packet", fanout]["streams_per_core"] / results["stock", fanout]["streams_per_core"]
        print(f"fan-out {fanout}: packet relay / stock MediaRelay = {ratio:.1f}x streams per core")


if __name__ == "__main__":
    main()
