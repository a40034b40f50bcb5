"""Relay benchmark: aiortc's stock MediaRelay against the packet-forwarding relay.

    python benchmarks/relay.py                      # all four runs, about two minutes
    python benchmarks/relay.py --modes packet --fanouts 1 --packet-streams 60

Publishers send a pre-encoded 640x480 VP8 clip (about 1 Mbit/s, 30 fps, a keyframe
every 2 s) to the relay, each in its own room with 1 or 4 subscribers that count
packets and frames but never decode; a run of S streams has S / fan-out publishers.
The relay runs in one child process, the publishers and subscribers in
--client-processes others (rooms dealt round-robin), so the clients' CPU does not
share an interpreter with the relay. The relay's CPU time (all threads, so the
stock relay's encoder threads count; user and system, so the kernel's UDP work
for its sockets counts) is measured over a window after a warm-up.
Streams per core = forwarded streams / relay CPU share in the window, meaningful only
when every stream flowed at full rate (a run where one fell below 90 % of the frame
rate is marked INVALID). The relay loop's longest stall, and how much of it the relay
was actually running, tell a busy relay from one the machine did not schedule.
Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import time
from concurrent.futures import ThreadPoolExecutor
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

    def on_rtp(self, data: bytes) -> None:
        """One decrypted packet, read from its fixed header as the relay does."""
        sequence_number = (data[2] << 8) | data[3]
        self.packets += 1
        self.frames += data[1] >> 7  # marker bit
        if self.highest is None:
            self.first = self.highest = sequence_number
        else:
            delta = (sequence_number - self.highest) & 0xFFFF
            if delta < 0x8000:
                self.highest += delta

    def snapshot(self) -> tuple[int, int, int, int]:
        """(packets, frames, highest, first); before the first packet the stream
        "starts" just before it arrives."""
        if self.highest is None:
            return 0, 0, -1, 0
        return self.packets, self.frames, self.highest, self.first


async def nothing(*args: object) -> None:
    return None


def serve(mode: str, conn, relay_loop: str) -> None:  # noqa: ANN001
    if relay_loop == "uvloop":
        import uvloop  # not a project dependency: for comparison only

        uvloop.run(_serve(mode, conn))
    else:
        asyncio.run(_serve(mode, conn))


class Stalls:
    """The relay loop's longest stall and garbage collection pause since the last
    reading: packets wait in the kernel meanwhile, and are dropped when a
    socket's buffer fills."""

    def __init__(self) -> None:
        self.loop = self.busy = self.gc = 0.0
        self._gc_start = 0.0
        gc.callbacks.append(self._collecting)

    def _collecting(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc = max(self.gc, time.perf_counter() - self._gc_start)

    async def watch(self) -> None:
        while True:
            start, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(0.005)
            stall = time.perf_counter() - start - 0.005
            if stall > self.loop:
                # CPU the loop's thread used meanwhile: near the stall, the relay was
                # busy; near zero, the machine did not run it.
                self.loop, self.busy = stall, time.thread_time() - cpu

    def read(self) -> tuple[float, float, float]:
        readings = self.loop, self.busy, self.gc
        self.loop = self.busy = self.gc = 0.0
        return readings


async def _serve(mode: str, conn) -> None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    relay, stock, pcs, tracks = Relay(), MediaRelay(), [], {}
    stalls = Stalls()
    watcher = asyncio.ensure_future(stalls.watch())
    while True:
        message = await loop.run_in_executor(None, conn.recv)
        if message[0] == "cpu":
            times = os.times()
            received = sum(source.packets_received for name in relay.room_names
                           for source in relay.room(name).sources())
            conn.send((times.user + times.system, times.system, received, time.monotonic(),
                       *stalls.read()))
            continue
        if message[0] == "stop":
            watcher.cancel()
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


def udp_receive_buffer_drops() -> int:
    """Datagrams the kernel dropped, machine-wide, because a socket's buffer was full."""
    with open("/proc/net/snmp") as snmp:
        rows = [line.split() for line in snmp if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


def clients(conn, mode: str, rooms: list[int], fanout: int, clip: list[bytes]) -> None:  # noqa: ANN001
    asyncio.run(_clients(conn, rooms, fanout, clip))


async def _clients(conn, rooms: list[int], fanout: int, clip: list[bytes]) -> None:  # noqa: ANN001
    """Publishers and subscribers of some rooms; offers go to the relay via the parent."""
    loop = asyncio.get_running_loop()

    async def connect(pc: RTCPeerConnection, role: str, room: str, name: str) -> None:
        await pc.setLocalDescription(await pc.createOffer())
        conn.send(("offer", role, room, name, pc.localDescription.sdp))
        answer = await loop.run_in_executor(None, conn.recv)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    pcs, counters = [], []
    for i in rooms:
        pc = RTCPeerConnection(CONFIG)
        pc.addTransceiver(ClipTrack(clip), direction="sendonly")
        pcs.append(pc)
        await connect(pc, "publish", f"room-{i}", f"pub-{i}")
        for j in range(fanout):
            pc = RTCPeerConnection(CONFIG)
            transceiver = pc.addTransceiver("video", direction="recvonly")
            counter = Counter()
            # The subscriber must not decode either: count packets in place of it.
            hooks.take_over_receiver_raw(transceiver.receiver, counter.on_rtp, nothing,
                                         lambda p: None)
            pcs.append(pc)
            counters.append(counter)
            await connect(pc, "subscribe", f"room-{i}", f"sub-{i}-{j}")
    conn.send(("ready",))
    while True:
        message = await loop.run_in_executor(None, conn.recv)
        if message[0] == "snapshot":
            conn.send(([c.snapshot() for c in counters], time.process_time(), time.monotonic()))
        else:
            await asyncio.gather(*(pc.close() for pc in pcs))
            conn.send(None)
            return


async def run(mode: str, streams: int, fanout: int, clip: list[bytes], warmup: float,
              seconds: float, client_processes: int, relay_loop: str) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=client_processes + 2)
    context = multiprocessing.get_context("spawn")
    relay_conn, child = context.Pipe()
    relay_process = context.Process(target=serve, args=(mode, child, relay_loop))
    relay_process.start()
    publishers = streams // fanout
    workers = []
    for k in range(client_processes):
        rooms = list(range(k, publishers, client_processes))
        if rooms:
            conn, child = context.Pipe()
            process = context.Process(target=clients, args=(child, mode, rooms, fanout, clip))
            process.start()
            workers.append((conn, process))
    relay_lock = asyncio.Lock()

    async def ask(conn, *message: object):  # noqa: ANN001, ANN202
        conn.send(message)
        return await loop.run_in_executor(pool, conn.recv)

    async def ask_relay(*message: object):  # noqa: ANN202
        async with relay_lock:
            return await ask(relay_conn, *message)

    async def signal(conn) -> None:  # noqa: ANN001
        while (message := await loop.run_in_executor(pool, conn.recv))[0] == "offer":
            conn.send(await ask_relay(*message[1:]))

    async def snapshot():  # noqa: ANN202
        # Each process stamps its own figures (CLOCK_MONOTONIC is machine-wide), so
        # a reply that is slow to come back under load does not skew the rates.
        return await asyncio.gather(ask_relay("cpu"),
                                    *(ask(conn, "snapshot") for conn, _ in workers))

    await asyncio.gather(*(signal(conn) for conn, _ in workers))
    await asyncio.sleep(warmup)
    drops_before = udp_receive_buffer_drops()
    relay_before, *clients_before = await snapshot()
    await asyncio.sleep(seconds)
    relay_after, *clients_after = await snapshot()
    drops = udp_receive_buffer_drops() - drops_before
    load = os.getloadavg()[0]
    await asyncio.gather(*(ask(conn, "stop") for conn, _ in workers))
    await ask_relay("stop")
    for _, process in workers:
        process.join()
    relay_process.join()
    pool.shutdown()

    def rate(after: float, before: float, t_after: float, t_before: float) -> float:
        return (after - before) / (t_after - t_before)

    relay_time = relay_after[3], relay_before[3]
    cpu_share = rate(relay_after[0], relay_before[0], *relay_time)
    packet_rate = frame_rate = expected_rate = client_cpu = 0.0
    stream_frame_rates = []
    for (after, cpu_after, t_after), (before, cpu_before, t_before) in zip(
            clients_after, clients_before, strict=True):
        client_cpu += rate(cpu_after, cpu_before, t_after, t_before)
        for a, b in zip(after, before, strict=True):
            packet_rate += rate(a[0], b[0], t_after, t_before)
            stream_frame_rates.append(rate(a[1], b[1], t_after, t_before))
            if a[2] >= 0:  # a stream that has not started yet expects nothing
                expected_rate += rate(a[2], b[2] if b[2] >= 0 else a[3] - 1, t_after, t_before)
    frame_rate = sum(stream_frame_rates)
    return {
        "streams": streams,
        "relay_cpu_share": cpu_share,
        "relay_system_share": rate(relay_after[1], relay_before[1], *relay_time),
        "us_per_packet": cpu_share / max(packet_rate, 1e-9) * 1e6,
        "streams_per_core": streams / cpu_share if cpu_share else float("inf"),
        "fps": frame_rate / streams,
        "min_fps": min(stream_frame_rates),
        "loss": 1 - packet_rate / expected_rate if expected_rate else 1.0,
        # Packets the relay got from publishers against what subscribers should have
        # got: splits the loss into up- and downstream.
        "relay_in": (rate(relay_after[2], relay_before[2], *relay_time)
                     / (expected_rate / fanout) if expected_rate else 0.0),
        "udp_drops": drops,
        "loop_stall": relay_after[4],
        "stall_busy": relay_after[5],
        "gc_pause": relay_after[6],
        "client_cpu_share": client_cpu,
        "load": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stock-streams", type=int, default=4,
                        help="forwarded streams per stock run (rounded to the fan-out)")
    parser.add_argument("--packet-streams", type=int, default=60,
                        help="forwarded streams per packet-relay run")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--relay-loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="event loop of the relay process (uvloop must be installed)")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--modes", default="stock,packet", help="comma-separated")
    parser.add_argument("--fanouts", default="1,4", help="comma-separated")
    args = parser.parse_args()
    clip = encode_clip()
    clip_rate = sum(map(len, clip)) * 8 / (len(clip) / FPS) / 1e6
    print(f"clip: {len(clip)} VP8 frames {WIDTH}x{HEIGHT} at {FPS} fps, {clip_rate:.2f} Mbit/s; "
          f"{os.cpu_count()} CPUs; clients in {args.client_processes} processes; "
          f"relay on {args.relay_loop}")
    results = {}
    modes = args.modes.split(",")
    fanouts = [int(f) for f in args.fanouts.split(",")]
    streams_of = {"stock": args.stock_streams, "packet": args.packet_streams}
    for mode in modes:
        for fanout in fanouts:
            streams = max(fanout, streams_of[mode] // fanout * fanout)
            r = asyncio.run(run(mode, streams, fanout, clip, args.warmup, args.seconds,
                                args.client_processes, args.relay_loop))
            results[mode, fanout] = r
            print(f"{mode:6} fan-out {fanout}: {r['streams']:3} streams, relay CPU "
                  f"{r['relay_cpu_share']:.2f} core ({r['relay_system_share']:.2f} system), "
                  f"{r['us_per_packet']:6.1f} µs/packet, "
                  f"{r['streams_per_core']:6.1f} streams/core, {r['fps']:4.1f} fps delivered "
                  f"(slowest stream {r['min_fps']:4.1f}), loss {r['loss']:.2%}"
                  + (f" (relay got {r['relay_in']:.2%})" if mode == "packet" else "")
                  + f", UDP buffer drops {r['udp_drops']}, relay loop stalled up to "
                  f"{r['loop_stall'] * 1000:.0f} ms (busy {r['stall_busy'] * 1000:.0f} ms of it; "
                  f"longest GC {r['gc_pause'] * 1000:.0f} ms), "
                  f"clients {r['client_cpu_share']:.2f} core, load {r['load']:.1f}", flush=True)
            if r["min_fps"] < 0.9 * FPS:
                # Streams per core assumes every stream flowed at its full rate.
                print(f"  INVALID: a stream delivered {r['min_fps']:.1f} fps; "
                      "the machine could not carry this load", flush=True)
    for fanout in fanouts if len(modes) == 2 else ():
        ratio = results["packet", fanout]["streams_per_core"] / results["stock", fanout]["streams_per_core"]
        print(f"fan-out {fanout}: packet relay / stock MediaRelay = {ratio:.1f}x streams per core")


if __name__ == "__main__":
    main()
