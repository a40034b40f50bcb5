"""Relay benchmark: how many streams one relay core carries, found by raising the load.

    python benchmarks/relay.py            # packet relay 1:1 and fan-out 4, stock 1:1; < 10 min
    python benchmarks/relay.py --quick    # coarser steps and shorter windows; about 4 min
    python benchmarks/relay.py --payload both   # each packet search with plain VP8 frames,
                                                # then end-to-end encrypted ones, same steps

The relay runs in a child process pinned to CPU 0, the load generator in another pinned
to CPU 1. For each relay and fan-out the generator adds rooms (one publisher and 1 or 4
subscribers each) step by step and measures every step over a window: the step passes
when every subscriber got at least 29 fps and loss was at most 0.5 %. The ceiling is the
last step that passed before one failed twice in a row; the step after it is printed too.

The generator's peers are aiortc peer connections, so ICE, DTLS and the SRTP keys are
the real thing, but once connected their media bypasses aiortc: publishers send a
pre-encoded, pre-packetized 640x480 VP8 clip (about 1 Mbit/s, 30 fps, a keyframe every
2 s, with the mid and abs-send-time header extensions a browser sends) as SRTP straight
to their socket, each frame's packets built, protected and sent in C as one UDP GSO
message (the relay's socket receives the same datagrams, cut by the kernel); subscribers
read their sockets themselves (in C: every ready socket in one call every 2 ms, recvmmsg)
and count packets, frames (marker bits) and sequence gaps from the clear RTP header,
without decrypting and without a Python object per packet. That keeps the generator
cheaper per packet than the relay, which is checked: a step where the generator used as
much CPU per forwarded packet as the relay, fell behind its schedule, or ran out of CPU
is INVALID and ends that search; no ceiling, ratio or per-core figure is printed from it.

With `--payload e2ee` the clip's frames are in the end-to-end encrypted format of
docs/e2ee.md (version 2): the header (a keyframe's first ten bytes, a delta frame's first
three, bytes 1 and 2 of each 0xFF 0xFF), random bytes for the two hidden bytes, the
ciphertext and tag, a random IV, key id, header length and 0xE2, so 36 bytes longer,
packetized as before. The relay must forward them as it forwards plain VP8 (it never
opens a frame; its keyframe test reads the clear first byte); `both` runs each packet
search twice and compares the ceilings. The stock MediaRelay decodes, so it runs with plain
frames only.

Relay CPU is the relay process's user + system time (all threads: the stock relay's
decoder and encoder threads count, as does the kernel's UDP work for its sockets);
µs/packet is that CPU over the packets subscribers received in the window.
Not a test.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import glob
import multiprocessing
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction

import aioice.ice
import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.contrib.media import MediaRelay
from aiortc.sdp import SessionDescription

from smartpractice.rtc import Relay, hooks
from smartpractice.rtc.forwarding import IdleTrack
from smartpractice.rtc.hooks import srtp
from smartpractice.rtc.rtp_header import ABS_SEND_TIME, MID

FPS = 30
WIDTH, HEIGHT = 640, 480
BITRATE = 1_000_000
CONFIG = RTCConfiguration(iceServers=[])
RELAY_CPU, GENERATOR_CPU = 0, 1
MIN_FPS, MAX_LOSS = 29.0, 0.005
SETTLE = 3.0  # after a step's connections are up: every subscriber has had a keyframe

FULL = {"window": 6.0, "searches": [("packet", 1, "50,100,150,200,250,300,350,400,500"),
                                    ("packet", 4, "100,200,300,400,500,600,800"),
                                    ("stock", 1, "1,2,3,4,6,8,10")]}
MAX_LAG = 3 / FPS
QUICK = {"window": 4.0, "searches": [("packet", 1, "100,200,300,400"),
                                     ("packet", 4, "200,400,600,800"),
                                     ("stock", 1, "2,4,6,8")]}


E2EE_TRAILER = 16 + 12 + 4 + 2  # tag, IV, key id, clear count and format byte


def sealed_like(frame: bytes, key_id: bytes) -> bytes:
    """A VP8 frame as end-to-end encryption sends it (docs/e2ee.md, version 2): the same
    header with 0xFF 0xFF for bytes 1 and 2, random bytes where the ciphertext (with the two
    hidden bytes), tag and IV go, the key id, the header length and 0xE2."""
    clear = 10 if not frame[0] & 0x01 else 3  # P bit 0: a keyframe
    clear = min(clear, len(frame))
    hidden = 2 if clear >= 3 else 0
    header = frame[:1] + b"\xff" * hidden + frame[1 + hidden:clear]
    return header + os.urandom(hidden + len(frame) - clear + 16 + 12) + key_id + bytes([clear, 0xE2])


def encode_clip(frames: int = 2 * FPS, payload: str = "plain") -> list[list[bytes]]:
    """VP8 frames of a moving pattern with some noise, packetized as aiortc would:
    per frame, its RTP payloads; `payload` "e2ee": each frame sealed_like."""
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
        encoded += codec.encode(frame)
    encoded += codec.encode(None)
    key_id = os.urandom(4)
    frames_bytes = [bytes(packet) for packet in encoded]
    if payload == "e2ee":
        frames_bytes = [sealed_like(frame, key_id) for frame in frames_bytes]
    return [Vp8Encoder._packetize(frame, i % (1 << 15)) for i, frame in enumerate(frames_bytes)]  # noqa: SLF001


# --- the relay process -------------------------------------------------------------

def relay_process(conn, mode: str) -> None:  # noqa: ANN001
    os.sched_setaffinity(0, {RELAY_CPU})  # threads started later inherit it
    asyncio.run(_relay(conn, mode))


async def _relay(conn, mode: str) -> None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    relay, stock, pcs, tracks = Relay(), MediaRelay(), [], {}
    while True:
        message = await loop.run_in_executor(None, conn.recv)
        if message[0] == "cpu":
            times = os.times()
            forwarded = sum(f.packets_sent for name in relay.room_names
                            for source in relay.room(name).sources() for f in source.forwards)
            conn.send((times.user + times.system, time.monotonic(), forwarded))
        elif message[0] == "stop":
            await relay.close()
            await asyncio.gather(*(pc.close() for pc in pcs))
            conn.send(None)
            return
        elif mode == "packet":
            _, room, participant, offer = message
            conn.send(await relay.room(room).attach(participant, offer))
        else:
            _, room, participant, offer = message
            pc = RTCPeerConnection(CONFIG)
            pcs.append(pc)
            pc.on("track", lambda track, room=room: tracks.setdefault(room, track))
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            if participant.startswith("sub"):
                pc.addTrack(stock.subscribe(tracks[room]))
            await pc.setLocalDescription(await pc.createAnswer())
            conn.send(pc.localDescription.sdp)


# --- the load generator -------------------------------------------------------------

_HEADER = struct.Struct("!BBHLLHH")


class RelayRefused(Exception):
    """The relay answered an offer with an error instead of an SDP answer."""




class Publisher:
    """Sends the clip as SRTP on its own socket, bypassing aiortc's sender."""

    def __init__(self, pc: RTCPeerConnection, answer: str, clip: list[list[bytes]]) -> None:
        transport = pc.getTransceivers()[0].sender.transport
        pair = transport.transport._connection._nominated[1]
        self._socket = pair.protocol.transport._sock
        self._fd = self._socket.fileno()
        self._session = transport._tx_srtp  # kept alive while its address is used
        self._session_address = srtp.session_address(self._session)
        self._sockaddr = srtp.sockaddr(*pair.remote_addr[:2])
        self.unsent = 0
        self._ssrc, _ = hooks.sender_ssrcs(pc.getTransceivers()[0].sender)
        media = SessionDescription.parse(answer).media[0]
        self._payload_type = next(c.payloadType for c in media.rtp.codecs
                                  if c.mimeType.lower() == "video/vp8")
        ids = {e.uri: e.id for e in media.rtp.headerExtensions}
        mid = media.rtp.muxId.encode()
        self._mid = bytes([(ids[MID] << 4) | (len(mid) - 1)]) + mid
        self._abs_send_time = bytes([(ids[ABS_SEND_TIME] << 4) | 2])
        extensions = len(self._mid) + 1 + 3
        self._padding = -extensions % 4
        self._extension_words = (extensions + self._padding) >> 2
        self._clip = clip
        self._sequence = self._ssrc & 0x7FFF
        self._index = 0
        self.due = 0.0

    def send_frame(self) -> int:
        payloads = self._clip[self._index % len(self._clip)]
        timestamp = (self._index * 90000 // FPS) & 0xFFFFFFFF
        self._index += 1
        # abs-send-time: 6.18 fixed-point seconds (24 bits)
        abs_send_time = (int(time.monotonic() * (1 << 18)) & 0xFFFFFF).to_bytes(3, "big")
        header = _HEADER.pack(0x90, self._payload_type, 0, timestamp, self._ssrc, 0xBEDE,
                              self._extension_words) + self._mid + self._abs_send_time + abs_send_time
        header += b"\0" * self._padding
        # The frame's packets built and protected in C (_datagrams.c) and sent as one UDP
        # GSO message: the relay's socket gets the same datagrams, cut by the kernel.
        self.unsent += srtp.send_rtp_frame(self._fd, self._session_address, self._sockaddr,
                                           header, payloads, self._sequence, True)
        self._sequence = (self._sequence + len(payloads)) & 0xFFFF
        return len(payloads)


class Subscriber:
    """Reads its socket itself: RTP is counted from the clear header, the rest (STUN
    consent checks, RTCP, DTLS) goes to aioice and aiortc as usual."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self._pc = pc
        # packets, frames (marker bits), highest extended sequence number (-1: none yet),
        # counted in C by srtp.count_rtp: no Python object per packet
        self._counts = array.array("q", [0, 0, -1])

    def take_over(self, sockets: SubscriberSockets) -> None:
        # Every socket of the connection: the relay may send on a pair other than the
        # one this side nominated last (IPv4 and IPv6 both succeed here).
        transport = self._pc.getTransceivers()[0].receiver.transport
        for protocol in transport.transport._connection._protocols:
            # in place of the transport's reader and RtpInput's (hooks), which decrypts
            fd = protocol.transport._sock.fileno()
            protocol.transport.pause_reading()
            protocol.transport._loop._remove_reader(fd)
            sockets.add(fd, self._counts, protocol.datagram_received)

    def snapshot(self) -> tuple[int, int, int]:
        packets, frames, highest = self._counts
        return packets, frames, highest


class SubscriberSockets:
    """Every subscriber's sockets in one epoll set, read on each tick of the generator's
    publishing loop by one call (count_rtp_ready, in C: recvmmsg, not decrypted) rather
    than by an event-loop callback per socket and wake-up, which cost the generator more
    than the counting. STUN, DTLS and RTCP go to aioice and aiortc as usual."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._counts: list[array.array | None] = []  # by file descriptor
        self._others: dict[int, Callable[[bytes, tuple], None]] = {}

    def add(self, fd: int, counts: array.array, other: Callable[[bytes, tuple], None]) -> None:
        self._counts += [None] * (fd + 1 - len(self._counts))
        self._counts[fd] = counts
        self._others[fd] = other
        self._epoll.register(fd, select.EPOLLIN)

    def drain(self) -> None:
        for fd, datagram, address in srtp.count_rtp_ready(self._epoll.fileno(), self._counts) or ():
            self._others[fd](datagram, address)


def generator_process(conn, relay_conn, clip: list[list[bytes]]) -> None:  # noqa: ANN001
    os.sched_setaffinity(0, {GENERATOR_CPU})
    # The generator's own consent checks (one try, 0.5 s) expired while a long step was
    # being connected on a loaded machine, closing its sockets; its peers' lifetime is
    # not what is measured. The relay's consent checks are unchanged.
    aioice.ice.CONSENT_FAILURES = 1_000_000
    asyncio.run(Generator(conn, relay_conn, clip).run())


class Generator:
    def __init__(self, conn, relay_conn, clip: list[list[bytes]]) -> None:  # noqa: ANN001
        self._conn, self._relay_conn, self._clip = conn, relay_conn, clip
        self._publishers: list[Publisher] = []
        self._subscribers: list[Subscriber] = []
        self._sockets = SubscriberSockets()
        self._pcs: list[RTCPeerConnection] = []
        self._relay_lock = asyncio.Lock()
        self._rooms = 0
        self.lag = 0.0  # how late the latest frame went out, at most, since the last reading
        self.sent = 0

    async def _ask_relay(self, *message: object):  # noqa: ANN202
        async with self._relay_lock:
            self._relay_conn.send(message)
            return await asyncio.get_running_loop().run_in_executor(None, self._relay_conn.recv)

    async def _connect(self, pc: RTCPeerConnection, room: str, name: str) -> str:
        await pc.setLocalDescription(await pc.createOffer())
        answer = await self._ask_relay("offer", room, name, pc.localDescription.sdp)
        if not isinstance(answer, str):
            raise RelayRefused(f"the relay refused {room}/{name}: {answer}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        for _ in range(3000):  # 150 s: a relay under callgrind is slow to connect
            if pc.connectionState == "connected":
                return answer
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{name} did not connect to the relay: {pc.connectionState}")

    async def _add_room(self, fanout: int) -> None:
        room = f"room-{self._rooms}"
        self._rooms += 1
        pc = RTCPeerConnection(CONFIG)
        self._pcs.append(pc)
        pc.addTransceiver(IdleTrack("video"), direction="sendonly")
        publisher = Publisher(pc, await self._connect(pc, room, "pub"), self._clip)
        subscribers = []
        for j in range(fanout):
            pc = RTCPeerConnection(CONFIG)
            self._pcs.append(pc)
            transceiver = pc.addTransceiver("video", direction="recvonly")
            # No decoder thread: the subscriber only counts (Subscriber._drain).
            hooks.take_over_receiver_raw(transceiver.receiver, lambda data: None,
                                         _nothing, lambda parameters: None)
            subscribers.append(Subscriber(pc))
            await self._connect(pc, room, f"sub-{j}")
        for subscriber in subscribers:
            subscriber.take_over(self._sockets)
        self._subscribers += subscribers
        publisher.due = time.monotonic()
        self._publishers.append(publisher)

    async def _grow(self, rooms: int, fanout: int) -> None:
        pending = [self._add_room(fanout) for _ in range(rooms - len(self._publishers))]
        for start in range(0, len(pending), 8):
            await asyncio.gather(*pending[start:start + 8])
        # Publishers spread evenly over a frame interval, as independent cameras are.
        now = time.monotonic()
        count = len(self._publishers)
        for i, publisher in enumerate(self._publishers):
            publisher.due = now + i / count / FPS

    async def _publish(self) -> None:
        period = 1 / FPS
        turn = 0
        while True:
            publishers = self._publishers
            if publishers:
                now = time.monotonic()
                for _ in range(len(publishers)):
                    publisher = publishers[turn % len(publishers)]
                    if publisher.due > now:
                        break
                    self.lag = max(self.lag, now - publisher.due)
                    self.sent += publisher.send_frame()
                    publisher.due += period
                    turn += 1
            self._sockets.drain()
            await asyncio.sleep(0.002)

    def _snapshot(self) -> tuple[list[tuple[int, int, int]], float, float]:
        times = os.times()
        return ([s.snapshot() for s in self._subscribers], times.user + times.system,
                time.monotonic())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        publishing = asyncio.ensure_future(self._publish())
        while True:
            message = await loop.run_in_executor(None, self._conn.recv)
            if message[0] == "grow":
                _, rooms, fanout = message
                try:
                    await self._grow(rooms, fanout)
                except RelayRefused as refused:
                    self._conn.send(str(refused))
                    continue
                self._conn.send(None)
            elif message[0] == "snapshot":
                if publishing.done():
                    publishing.result()  # raises what stopped the publishers
                relay_cpu = await self._ask_relay("cpu")
                lag, self.lag = self.lag, 0.0
                unsent = sum(p.unsent for p in self._publishers)
                self._conn.send((relay_cpu, self._snapshot(), lag, self.sent, unsent))
            else:
                publishing.cancel()
                await self._ask_relay("stop")
                await asyncio.gather(*(pc.close() for pc in self._pcs))
                self._conn.send(None)
                return


async def _nothing(*args: object) -> None:
    return None


# --- the search ---------------------------------------------------------------------

def udp_receive_buffer_drops() -> int:
    """Datagrams the kernel dropped, machine-wide, because a socket's buffer was full."""
    with open("/proc/net/snmp") as snmp:
        rows = [line.split() for line in snmp if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


CALLGRIND_WRAPPER = """#!/bin/sh
if [ -n "$RELAY_CALLGRIND_OUT" ]; then
  exec valgrind -q --tool=callgrind --instr-atstart=no \\
    --callgrind-out-file="$RELAY_CALLGRIND_OUT" "%s" "$@"
fi
exec "%s" "$@"
"""


def _callgrind_wrapper() -> str:
    path = os.path.join(tempfile.mkdtemp(prefix="relay-callgrind-"), "python")
    with open(path, "w") as wrapper:
        wrapper.write(CALLGRIND_WRAPPER % (sys.executable, sys.executable))
    os.chmod(path, 0o755)  # noqa: S103
    return path


class Session:
    """One relay process and one generator process, grown step by step."""

    def __init__(self, mode: str, fanout: int, clip: list[list[bytes]],
                 callgrind: str | None = None) -> None:
        context = multiprocessing.get_context("spawn")
        relay_end, relay_child = context.Pipe()
        self._conn, child = context.Pipe()
        self._relay = context.Process(target=relay_process, args=(relay_child, mode),
                                      daemon=True)
        self._generator = context.Process(target=generator_process,
                                          args=(child, relay_end, clip), daemon=True)
        self._callgrind = callgrind
        if callgrind:
            # The relay alone runs under valgrind (see CALLGRIND_WRAPPER).
            context.set_executable(_callgrind_wrapper())
            os.environ["RELAY_CALLGRIND_OUT"] = callgrind
        self._relay.start()
        if callgrind:
            context.set_executable(sys.executable)
            os.environ.pop("RELAY_CALLGRIND_OUT")
        self._generator.start()
        self.fanout = fanout

    def _ask(self, *message: object):  # noqa: ANN202
        self._conn.send(message)
        return self._conn.recv()

    def grow(self, streams: int) -> None:
        refused = self._ask("grow", streams // self.fanout, self.fanout)
        if refused is not None:
            raise RelayRefused(refused)
        time.sleep(SETTLE)

    def _callgrind_control(self, option: str) -> None:
        subprocess.run(["callgrind_control", option, str(self._relay.pid)], check=True,  # noqa: S603, S607
                       capture_output=True)

    def measure(self, seconds: float) -> dict[str, float]:
        if self._callgrind:
            self._callgrind_control("--instr=on")
            self._callgrind_control("--zero")
        drops = udp_receive_buffer_drops()
        (relay_cpu0, relay_t0, forwarded0), (subs0, gen_cpu0, gen_t0), _, sent0, unsent0 = self._ask(
            "snapshot")
        time.sleep(seconds)
        (relay_cpu1, relay_t1, forwarded1), (subs1, gen_cpu1, gen_t1), lag, sent1, unsent1 = self._ask(
            "snapshot")
        window = gen_t1 - gen_t0
        instructions = 0
        if self._callgrind:
            self._callgrind_control("--dump")
            self._callgrind_control("--instr=off")
            dumps = sorted(glob.glob(self._callgrind + ".*"), key=os.path.getmtime)
            with open(dumps[-1]) as dump:
                instructions = next(int(line.split()[1]) for line in dump
                                    if line.startswith("totals:"))
        packets = expected = 0
        frame_rates = []
        for (p1, f1, h1), (p0, f0, h0) in zip(subs1, subs0, strict=False):
            packets += p1 - p0
            frame_rates.append((f1 - f0) / window)
            expected += h1 - h0 if h0 >= 0 else p1 - p0
        packets = max(packets, 1)
        relay_share = (relay_cpu1 - relay_cpu0) / (relay_t1 - relay_t0)
        generator_share = (gen_cpu1 - gen_cpu0) / window
        return {
            "relay_share": relay_share,
            "relay_us": relay_share * window / packets * 1e6,
            "generator_share": generator_share,
            "generator_us": generator_share * window / packets * 1e6,
            "fps": sum(frame_rates) / len(frame_rates),
            "min_fps": min(frame_rates),
            "loss": 1 - packets / expected if expected > 0 else 1.0,
            "sent_rate": (sent1 - sent0) / window,
            "delivered_rate": packets / window,
            "lag": lag,
            "unsent": unsent1 - unsent0,
            "udp_drops": udp_receive_buffer_drops() - drops,
            "load": os.getloadavg()[0],
            "instructions": instructions / max(forwarded1 - forwarded0, 1),
        }

    def close(self) -> None:
        self._ask("stop")
        self._generator.join()
        self._relay.join()


def verdict(r: dict[str, float]) -> tuple[str, str]:
    """('invalid' | 'fail' | 'pass', why)."""
    if r["generator_us"] >= r["relay_us"]:
        return "invalid", "the generator cost as much per packet as the relay"
    # A frame a few milliseconds past its slot is scheduling jitter on a Python event loop
    # (40 ms seen on an idle machine) that subscribers' frame rates absorb; a generator that
    # falls three frames behind no longer offers the load the step claims.
    if r["lag"] > MAX_LAG:
        return "invalid", f"the generator sent frames up to {r['lag'] * 1000:.0f} ms late"
    if r["unsent"]:
        return "invalid", f"the generator's sockets did not take {r['unsent']} packets"
    if r["generator_share"] > 0.9:
        return "invalid", "the generator used more than 0.9 of its core"
    if r["min_fps"] < MIN_FPS or r["loss"] > MAX_LOSS:
        return "fail", f"slowest stream {r['min_fps']:.1f} fps, loss {r['loss']:.2%}"
    return "pass", ""


def search(mode: str, fanout: int, steps: list[int], clip: list[list[bytes]],
           window: float, payload: str = "plain") -> int | str | None:
    """The largest step that passed before one failed (twice in a row); "all" when every
    step passed; None when none did or an INVALID step ended the search first."""
    label = f"{mode:6} {'1:1' if fanout == 1 else f'fan-out {fanout}'}"
    label += " e2ee" if payload == "e2ee" else ""
    session = Session(mode, fanout, clip)
    ceiling = None
    try:
        for streams in steps:
            session.grow(streams)
            for _attempt in (1, 2):
                r = session.measure(window)
                result, why = verdict(r)
                print(f"{label} {streams:4} streams: relay {r['relay_share']:.2f} core "
                      f"{r['relay_us']:6.1f} µs/packet | generator {r['generator_share']:.2f} "
                      f"core {r['generator_us']:5.1f} µs/packet, frames up to "
                      f"{r['lag'] * 1000:.0f} ms late | {r['fps']:4.1f} fps (slowest "
                      f"{r['min_fps']:4.1f}), loss {r['loss']:.2%}, {r['sent_rate']:.0f} "
                      f"packets/s sent, {r['delivered_rate']:.0f} delivered, UDP buffer drops "
                      f"{r['udp_drops']}, load {r['load']:.2f} | {result.upper()}"
                      + (f": {why}" if why else ""), flush=True)
                if result != "fail":
                    break
            if result == "invalid":
                print(f"{label}: search ended at {streams} streams by an INVALID step; "
                      f"no ceiling above {ceiling or 0} streams is claimed", flush=True)
                return None
            if result == "fail":
                print(f"{label}: ceiling {ceiling or 'below ' + str(steps[0])} streams on "
                      f"one core (failed at {streams})", flush=True)
                return ceiling
            ceiling = streams
        print(f"{label}: at least {ceiling} streams on one core (the last step; "
              "the search found no failure)", flush=True)
        return "all"
    finally:
        session.close()


def count_instructions(mode: str, fanout: int, steps: list[int], clip: list[list[bytes]],
                       window: float, out: str) -> None:
    """The relay under callgrind: instructions per delivered packet at each step, the
    same on a busy machine as on a quiet one (for comparing changes; the relay runs
    some 50 times slower, so keep the steps small and read nothing else into them)."""
    session = Session(mode, fanout, clip, callgrind=out)
    try:
        for streams in steps:
            session.grow(streams)
            r = session.measure(window)
            print(f"{mode} {'1:1' if fanout == 1 else f'fan-out {fanout}'} {streams} streams "
                  f"under callgrind: {r['instructions']:,.0f} relay instructions per forwarded "
                  f"packet ({r['delivered_rate']:.0f} packets/s delivered, slowest stream "
                  f"{r['min_fps']:.1f} fps, loss {r['loss']:.2%})", flush=True)
    finally:
        session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="coarser steps, shorter windows")
    parser.add_argument("--only", help="e.g. packet:1 or stock:1; default: every search")
    parser.add_argument("--steps", help="comma-separated stream counts for --only")
    parser.add_argument("--payload", choices=("plain", "e2ee", "both"), default="plain",
                        help="VP8 frames as they are, end-to-end encrypted (docs/e2ee.md), or "
                             "each packet search with both, one after the other")
    parser.add_argument("--callgrind", metavar="FILE",
                        help="with --only and --steps: the relay under valgrind's callgrind, "
                             "printing instructions per packet (dumps to FILE.*)")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    searches = plan["searches"]
    if args.only:
        mode, fanout = args.only.split(":")
        steps = args.steps or next((s for m, f, s in searches if (m, f) == (mode, int(fanout))),
                                   None)
        searches = [(mode, int(fanout), steps)]
    # Stopped by a signal, exit normally: the relay and generator processes go too.
    signal.signal(signal.SIGTERM, lambda *args: sys.exit(1))
    if os.cpu_count() < 2:
        raise SystemExit("needs two CPUs: one for the relay, one for the load generator")
    os.sched_setaffinity(0, {GENERATOR_CPU})
    started = time.monotonic()
    print("command: " + " ".join([os.path.basename(sys.executable), *sys.argv]), flush=True)
    clips = {payload: encode_clip(payload=payload) for payload in ("plain", "e2ee")}
    clip = clips["e2ee" if args.payload == "e2ee" else "plain"]
    packets = sum(map(len, clip))
    rate = sum(len(p) for frame in clip for p in frame) * 8 / (len(clip) / FPS) / 1e6
    print(f"clip: {len(clip)} VP8 frames {WIDTH}x{HEIGHT} at {FPS} fps, {rate:.2f} Mbit/s, "
          f"{packets / len(clip) * FPS:.0f} packets/s per stream; {os.cpu_count()} CPUs, relay "
          f"on CPU {RELAY_CPU}, generator on CPU {GENERATOR_CPU}; pass: >= {MIN_FPS} fps "
          f"and <= {MAX_LOSS:.1%} loss; load average {os.getloadavg()}", flush=True)
    if args.callgrind:
        mode, fanout, steps = searches[0]
        count_instructions(mode, fanout, [int(s) for s in steps.split(",")], clip,
                           plan["window"], args.callgrind)
        return
    ceilings: dict[tuple[str, int, str], int | str | None] = {}
    for mode, fanout, steps in searches:
        payloads = ["plain", "e2ee"] if args.payload == "both" and mode == "packet" else [
            "plain" if mode == "stock" or args.payload == "both" else args.payload]
        for payload in payloads:
            ceilings[mode, fanout, payload] = search(mode, fanout, [int(s) for s in steps.split(",")],
                                                     clips[payload], plan["window"], payload)
        if len(payloads) == 2:
            compare_payloads(mode, fanout, ceilings[mode, fanout, "plain"], ceilings[mode, fanout, "e2ee"])
    packet, stock = ceilings.get(("packet", 1, "plain")), ceilings.get(("stock", 1, "plain"))
    if isinstance(packet, int) and isinstance(stock, int):
        print(f"1:1 ceilings: packet relay {packet} / stock MediaRelay {stock} streams = "
              f"{packet / stock:.0f}x")
    print(f"{time.monotonic() - started:.0f} s; load average {os.getloadavg()}")


def compare_payloads(mode: str, fanout: int, plain: int | str | None, e2ee: int | str | None) -> None:
    """Encrypted payloads lose no throughput when their search got as far as the plain one."""
    label = f"{mode} {'1:1' if fanout == 1 else f'fan-out {fanout}'}"
    if plain is None or e2ee is None:
        print(f"{label} plain vs e2ee: INVALID (a search ended without a ceiling: plain {plain}, "
              f"e2ee {e2ee}); nothing compared", flush=True)
        return
    def reach(ceiling: int | str) -> float:
        return float("inf") if ceiling == "all" else float(ceiling)

    same = reach(e2ee) >= reach(plain)
    print(f"{label} plain vs e2ee: ceiling {plain} / {e2ee} streams (\"all\": every step passed) | "
          + ("PASS: no lost throughput" if same else "FAIL: encrypted payloads carried fewer streams"),
          flush=True)


if __name__ == "__main__":
    main()
