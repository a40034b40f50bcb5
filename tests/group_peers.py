"""A relayed group call of real aiortc peers, each connected the way the browser client
connects (static/call/relay.js, docs/signalling.md "Joining the relay"): a publish
connection with the participant's own tracks, and a receive connection made afresh
whenever the list of publishers (ids, kinds, generations) changes, with one `recvonly`
m-line per publisher and kind in that order, all bundled as a browser bundles them.

Each participant runs in its own process (`python -m tests.group_peers`, driven over
stdin and stdout), as each browser runs on its own machine: six aiortc peers decoding
five videos and five microphones each do not fit one Python process on two cores. The
relay stays in the test's process. What a participant decodes is counted per publisher
and per track, so a test can say who does not see or hear whom."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import re
import sys
import time
from fractions import Fraction
from pathlib import Path

import aiohttp
import av
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    rtcrtpreceiver,
)
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

# A light load for the machine, not the browsers' 30 fps and 20 ms: what the relay does
# with a packet does not depend on the rate, and six processes of this fit two cores.
FPS = 10
VIDEO_CLOCK = Fraction(1, 90000)
OPUS_PACKET = 0.06  # seconds
OPUS_SAMPLES = 2880  # 60 ms at 48 kHz
AUDIO_CLOCK = Fraction(1, 48000)
ROOT = Path(__file__).resolve().parent.parent


def connection() -> RTCPeerConnection:
    # A browser offers every m-line on one transport (BUNDLE); aiortc's default policy
    # would give each kind its own.
    return RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


class OnRequestCamera(MediaStreamTrack):
    """A camera that encodes VP8 itself and, like a browser, makes a keyframe only when it
    is asked for one (PLI or FIR), apart from its first frame. aiortc's own encoder also
    starts afresh with a keyframe whenever the bitrate estimate moves by a tenth, which
    would cover up a keyframe request the relay never sent.

    Each participant's camera has its own picture size, so a receiver can tell whose
    video arrived on an m-line. `hold()` keeps the camera from sending (its frames are
    still encoded and thrown away, so the first one sent afterwards is no keyframe), and
    `lose_requests` makes it ignore that many requests, as if they were lost on the way.
    `resize()` puts a shared screen in the camera's place."""

    kind = "video"

    def __init__(self, width: int, height: int, fps: int = FPS) -> None:
        super().__init__()
        self.fps = fps
        self.keyframes_sent = 0
        self.requests = 0
        self.resizes = 0
        self.lose_requests = 0
        self.released = True
        self._wanted = False
        self._index = 0
        self._start: float | None = None
        self._codec = self._encoder(width, height)

    @staticmethod
    def _encoder(width: int, height: int) -> av.CodecContext:
        codec = av.CodecContext.create("libvpx", "w")
        codec.width, codec.height = width, height
        codec.pix_fmt = "yuv420p"
        codec.bit_rate = 150_000
        codec.gop_size = 1_000_000  # no periodic keyframes
        codec.options = {"deadline": "realtime", "lag-in-frames": "0", "cpu-used": "-8"}
        return codec

    def resize(self, width: int, height: int) -> None:
        """Another picture size on the same sender, as when the browser shares the screen
        (static/call/media.js replaces the camera's track, without renegotiation): a new
        encoder, which starts with a keyframe nobody asked for."""
        self._codec = self._encoder(width, height)
        self.resizes += 1

    def hold(self) -> None:
        self.released = False

    def release(self) -> None:
        self.released = True

    def request_keyframe(self) -> None:
        """What the publisher's sender does on a PLI or FIR from the relay."""
        self.requests += 1
        if self.lose_requests:
            self.lose_requests -= 1
            return
        self._wanted = True

    def attach_to(self, sender) -> None:  # noqa: ANN001 - aiortc's RTCRtpSender
        # aiortc calls _send_keyframe on a PLI or FIR (as tests/test_relay.py also uses).
        sender._send_keyframe = self.request_keyframe

    def _encode(self, codec: av.CodecContext, index: int, keyframe: bool) -> tuple[bytes, bool]:
        frame = VideoFrame(width=codec.width, height=codec.height)
        # A pattern that moves, so that delta frames carry something.
        row = bytes((x + 4 * index) % 256 for x in range(frame.planes[0].line_size))
        frame.planes[0].update(row * codec.height)
        for plane in frame.planes[1:]:
            plane.update(bytes([128]) * plane.buffer_size)
        frame.pts, frame.time_base = index * 90000 // self.fps, VIDEO_CLOCK
        if keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        packets = codec.encode(frame)
        return b"".join(bytes(p) for p in packets), any(p.is_keyframe for p in packets)

    async def recv(self) -> av.Packet:
        loop = asyncio.get_running_loop()
        while True:
            if self._start is None:
                self._start = time.monotonic()
            await asyncio.sleep(max(0.0, self._start + self._index / self.fps - time.monotonic()))
            index, self._index = self._index, self._index + 1
            keyframe, self._wanted = self._wanted, False
            data, is_keyframe = await loop.run_in_executor(None, self._encode, self._codec, index, keyframe)
            if data and self.released:
                break
        self.keyframes_sent += is_keyframe
        packet = av.Packet(data)
        packet.pts, packet.time_base = index * 90000 // self.fps, VIDEO_CLOCK
        return packet


class ToneMicrophone(MediaStreamTrack):
    """A microphone that plays a steady tone in Opus packets of 60 ms, encoded once per
    process and repeated: a third of the packets (and decodes) of the browsers' 20 ms at a
    voice's bitrate, so that six participants, each decoding five others, fit two cores."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._packets = _tone_packets()
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> av.Packet:
        if self._start is None:
            self._start = time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self._index * OPUS_PACKET - time.monotonic()))
        index, self._index = self._index, self._index + 1
        packet = av.Packet(self._packets[index % len(self._packets)])
        packet.pts, packet.time_base = index * OPUS_SAMPLES, AUDIO_CLOCK
        return packet


@functools.cache
def _tone_packets() -> tuple[bytes, ...]:
    """One second of a 450 Hz tone (27 whole periods per packet), as Opus packets of 60 ms."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format = 48000, "mono", "s16"
    codec.bit_rate = 32000
    codec.options = {"frame_duration": "60", "application": "voip"}
    step = 2 * math.pi * 450 / 48000
    tone = b"".join(int(8000 * math.sin(step * n)).to_bytes(2, "little", signed=True)
                    for n in range(OPUS_SAMPLES))
    packets = []
    for index in range(round(1 / OPUS_PACKET) + 3):
        frame = AudioFrame(format="s16", layout="mono", samples=OPUS_SAMPLES)
        frame.planes[0].update(tone)
        frame.sample_rate, frame.pts, frame.time_base = 48000, index * OPUS_SAMPLES, AUDIO_CLOCK
        packets += [bytes(p) for p in codec.encode(frame)]
    return tuple(packets[-round(1 / OPUS_PACKET):])  # past the encoder's start


class BrowserLikeJitterBuffer(JitterBuffer):
    """aiortc's receiver waits for a lost video packet until 512 later ones have come (over a
    minute at the harness's frame rates) before it gives up on it and asks for a keyframe; a
    browser gives up within about a second. Under heavy load a lost packet whose repair is
    lost too stalled a participant's video for the rest of a test. 32 packets hold any
    frame the harness's cameras make."""

    def __init__(self, capacity: int, prefetch: int = 0, is_video: bool = False) -> None:
        super().__init__(min(capacity, 32) if is_video else capacity, prefetch, is_video)


class Endpoint:
    """A participant's side: its two connections and what it decoded. Runs in the
    participant's own process (serve) and answers the commands of RemoteMember."""

    def __init__(self) -> None:
        self.camera: OnRequestCamera | None = None
        self.publisher: RTCPeerConnection | None = None
        self.receiver: RTCPeerConnection | None = None
        self.layout: list[tuple[str, str]] = []
        self.decoded: dict[str, int] = {}  # "publisher video" -> frames decoded
        self.size_seen: dict[str, list[int]] = {}  # publisher -> latest picture size
        # (publisher, receive offer, first decoded video frame) per receive connection, on
        # the machine-wide monotonic clock (the same in every process)
        self.first_frames: list[tuple[str, float, float]] = []
        self._readers: list[asyncio.Task[None]] = []
        self._offered = 0.0

    async def publish(self, audio: bool, video: bool, size: list[int], hold: bool = False, fps: int = FPS) -> dict:
        await self._close_publisher()
        pc = self.publisher = connection()
        if audio:
            pc.addTransceiver(ToneMicrophone(), direction="sendonly")
        if video:
            self.camera = OnRequestCamera(*size, fps=fps)
            if hold:
                self.camera.hold()
            self.camera.attach_to(pc.addTransceiver(self.camera, direction="sendonly").sender)
        await pc.setLocalDescription(await pc.createOffer())
        return {"offer": pc.localDescription.sdp}

    async def published(self, answer: str) -> dict:
        await self.publisher.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        return {}

    async def receive(self, layout: list[list[str]]) -> dict:
        await self.stop_receiving()
        pc = self.receiver = connection()
        self.layout = [(publisher, kind) for publisher, kind in layout]
        for _, kind in self.layout:
            pc.addTransceiver(kind, direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        self._offered = time.monotonic()
        return {"offer": pc.localDescription.sdp}

    async def received(self, answer: str) -> dict:
        pc = self.receiver
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        # The remote tracks exist from the answer on.
        for (publisher, kind), transceiver in zip(self.layout, pc.getTransceivers(), strict=True):
            self._readers.append(asyncio.ensure_future(self._read(publisher, kind, transceiver.receiver.track)))
        return {}

    async def _read(self, publisher: str, kind: str, track: MediaStreamTrack) -> None:
        key = f"{publisher} {kind}"
        started = self._offered
        with contextlib.suppress(MediaStreamError):
            frame = await track.recv()
            if kind == "video":
                self.first_frames.append((publisher, started, time.monotonic()))
            while True:
                self.decoded[key] = self.decoded.get(key, 0) + 1
                if kind == "video":
                    self.size_seen[publisher] = [frame.width, frame.height]
                frame = await track.recv()

    async def stop_receiving(self) -> dict:
        if self.receiver is not None:
            await self.receiver.close()
            self.receiver = None
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        self._readers.clear()
        return {}

    async def _close_publisher(self) -> None:
        if self.publisher is not None:
            await self.publisher.close()
            self.publisher = None

    async def set_camera(self, release: bool = False, lose_requests: int = 0) -> dict:
        if release:
            self.camera.release()
        self.camera.lose_requests = lose_requests
        return {}

    async def share_screen(self, size: list[int]) -> dict:
        self.camera.resize(*size)
        return {}

    async def drop(self) -> dict:
        """The network goes away: both connections end without a word to the relay."""
        await self._close_publisher()
        await self.stop_receiving()
        return {}

    async def counts(self) -> dict:
        camera = self.camera
        return {"decoded": self.decoded, "size_seen": self.size_seen, "first_frames": self.first_frames,
                "camera": {"requests": camera.requests, "keyframes": camera.keyframes_sent,
                           "resizes": camera.resizes} if camera else None}


class CallClient:
    """A participant of a real call on the server, over its signalling socket, doing what the
    browser client does in relay topology (static/call/relay.js): publish once, and on each
    `relay_sources` whose list of others changed, one fresh receive connection with an m-line
    per publisher and kind, one receive offer at a time. It does not talk peer to peer: it
    joins calls that go through the relay. Decoded media is counted by the publishers' names."""

    def __init__(self, endpoint: Endpoint, base: str, consultation: int, username: str, password: str) -> None:
        self.endpoint = endpoint
        self.base, self.consultation = base, consultation
        self.username, self.password = username, password
        self.me: str | None = None
        self.names: dict[str, str] = {}
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._published = False
        self._receiving = ""
        self._pending: str | None = None  # receive_from of the receive offer out
        self._next: list[dict] | None = None
        self._told: set[tuple[str, str]] = set()
        self._version = 0

    async def run(self) -> None:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(base_url=self.base, cookie_jar=jar) as session:
            login = await (await session.get("/login")).text()
            token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
            response = await session.post("/login", data={"identifier": self.username, "password": self.password,
                                                          "csrf_token": token})
            assert response.ok, response.status
            async with session.ws_connect(f"/c/{self.consultation}/call/ws", headers={"Origin": self.base}) as socket:
                self._socket = socket
                await socket.send_json({"type": "join", "version": 1})
                async for message in socket:
                    if message.type == aiohttp.WSMsgType.TEXT:
                        await self._on(json.loads(message.data))

    async def leave(self) -> dict:
        if self._socket is not None and not self._socket.closed:
            await self._socket.send_json({"type": "leave"})
        return {}

    async def _on(self, message: dict) -> None:
        kind = message["type"]
        if kind == "welcome":
            self.me = message["id"]
        elif kind == "participants":
            self.names = {p["id"]: p["name"] for p in message["participants"]}
            # aiortc has no encoded transforms: like such a browser, it tells each newcomer
            # (docs/e2ee.md), and where the practice allows it the call runs without.
            for p in message["participants"]:
                if p["id"] != self.me and (p["id"], p["session"]) not in self._told:
                    self._told.add((p["id"], p["session"]))
                    await self._socket.send_json({"type": "e2ee_public", "to": p["id"], "to_session": p["session"],
                                                  "keys": None})
            if message["topology"] == "relay" and not self._published:
                self._published = True
                offer = await self.endpoint.publish(audio=True, video=True, size=[176, 144])
                await self._socket.send_json({"type": "relay_offer", "purpose": "publish", "sdp": offer["offer"],
                                              "receive_from": []})
        elif kind == "relay_sources":
            # Like relay.js: a list read before the newest one taken may arrive after it.
            if message["version"] >= self._version:
                self._version = message["version"]
                await self._receive(message["publishers"])
        elif kind == "relay_answer":
            if message["purpose"] == "publish":
                await self.endpoint.published(message["sdp"])
            elif json.dumps(message["receive_from"]) == self._pending:
                await self.endpoint.received(message["sdp"])
                await self._receive_done()
        elif kind == "error" and message.get("about") == "relay_offer":
            raise RuntimeError(f"the relay refused an offer: {message}")

    async def _receive(self, publishers: list[dict]) -> None:
        if self._pending is not None:
            self._next = publishers
            return
        others = [p for p in publishers if p["id"] != self.me]
        key = json.dumps(others)
        if key == self._receiving:
            return
        self._receiving = key
        if not others:
            await self.endpoint.stop_receiving()
            return
        offer = await self.endpoint.receive([[self.names.get(p["id"], p["id"]), kind]
                                             for p in others for kind in p["kinds"]])
        ids = [p["id"] for p in others]
        self._pending = json.dumps(ids)
        await self._socket.send_json({"type": "relay_offer", "purpose": "receive", "sdp": offer["offer"],
                                      "receive_from": ids})

    async def _receive_done(self) -> None:
        self._pending = None
        publishers, self._next = self._next, None
        if publishers is not None:
            await self._receive(publishers)


async def serve(arguments: list[str]) -> None:
    """One participant's process: a JSON command per line on stdin, a JSON answer per line
    on stdout; the end of stdin ends it. With arguments (base URL, consultation, user name,
    password) it is also a CallClient of that call."""
    rtcrtpreceiver.JitterBuffer = BrowserLikeJitterBuffer  # this process stands in for a browser
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 22)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    endpoint = Endpoint()
    handlers: list[object] = [endpoint]
    client = None
    if arguments:
        base, consultation, username, password = arguments
        client = CallClient(endpoint, base, int(consultation), username, password)
        handlers.insert(0, client)
        running = asyncio.ensure_future(client.run())
    try:
        while line := await reader.readline():
            command = json.loads(line)
            if client is not None and running.done():
                running.result()  # what went wrong, on the test's side of the pipe
            name = command.pop("do")
            handler = next(h for h in handlers if hasattr(h, name))
            answer = await getattr(handler, name)(**command)
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        if client is not None:
            running.cancel()
        await endpoint.drop()


class RemoteMember:
    """A participant as the test sees it: its process, and what it publishes."""

    def __init__(self, name: str, size: tuple[int, int], audio: bool, video: bool) -> None:
        self.name, self.size, self.audio, self.video = name, size, audio, video
        self.generation = 0  # publish connections made so far
        self.receiving = ""  # the publisher list the receive connection was made for
        self._process: asyncio.subprocess.Process | None = None

    @property
    def kinds(self) -> list[str]:
        # In the browser's order (media.js outgoing(): audio, then video).
        return [kind for kind, on in (("audio", self.audio), ("video", self.video)) if on]

    async def start(self, *arguments: str) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.group_peers", *arguments, cwd=ROOT, limit=1 << 22,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        await self.ask("counts")  # started up (imports take seconds on a loaded machine)

    async def ask(self, do: str, **arguments) -> dict:  # noqa: ANN003
        process = self._process
        process.stdin.write((json.dumps({"do": do, **arguments}) + "\n").encode())
        await process.stdin.drain()
        async with asyncio.timeout(60):
            line = await process.stdout.readline()
        assert line, f"{self.name}'s process ended (exit code {process.returncode})"
        return json.loads(line)

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.stdin.close()
        try:
            async with asyncio.timeout(15):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


class CallParticipant:
    """An aiortc participant in its own process that takes part in a call on the server the
    way a browser does (CallClient): log in, join over the signalling socket, publish a
    camera and a microphone through the relay and receive everyone else."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._process = RemoteMember(name, (176, 144), audio=True, video=True)

    async def start(self, base: str, consultation: int, username: str, password: str) -> None:
        await self._process.start(base, str(consultation), username, password)

    async def leave(self) -> None:
        await self._process.ask("leave")

    async def stop(self) -> None:
        await self._process.stop()

    async def until_receiving(self, names: list[str], frames: int = 30, within: float = 45.0) -> None:
        """This participant decodes `frames` more video frames and audio frames of each
        person named; else the assertion names whose video or sound did not come."""
        wanted = [(name, kind) for name in names for kind in ("video", "audio")]
        before = (await self._process.ask("counts"))["decoded"]
        deadline = time.monotonic() + within
        while True:
            decoded = (await self._process.ask("counts"))["decoded"]
            short = [(name, kind) for name, kind in wanted
                     if decoded.get(f"{name} {kind}", 0) < before.get(f"{name} {kind}", 0) + frames]
            if not short or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert not short, "\n".join(
            f"{self.name} (aiortc) does not {'see' if kind == 'video' else 'hear'} {name}: "
            f"{before.get(f'{name} {kind}', 0)} -> {decoded.get(f'{name} {kind}', 0)} {kind} frames decoded"
            for name, kind in short)


class GroupCall:
    """The participants of one relay room (smartpractice.rtc.RelayRoom), joining,
    leaving and reconnecting as the signalling makes browsers do."""

    def __init__(self, room, *, fps: int = FPS) -> None:  # noqa: ANN001 - smartpractice.rtc.RelayRoom
        """`fps`: the cameras' frame rate (a browser's is 30; the tests' lighter default fits six)."""
        self.fps = fps
        self.room = room
        self.members: dict[str, RemoteMember] = {}
        self.counts: dict[str, dict] = {}
        self._index = 0

    async def join(self, name: str, *, audio: bool = True, video: bool = True,
                   hold_camera: bool = False) -> RemoteMember:
        """`hold_camera`: the camera sends nothing until `set_camera(release=True)`."""
        [member] = await self.arrive([name], audio=audio, video=video)
        await self.enter([member], hold_camera=hold_camera)
        return member

    async def join_together(self, names: list[str]) -> None:
        """People who are all there when the call moves to the relay: each publishes camera
        and microphone, then each receives all the others on one receive connection."""
        await self.enter(await self.arrive(names))

    async def enter(self, members: list[RemoteMember], *, hold_camera: bool = False) -> None:
        """Participants whose processes run connect: each publishes, then everyone whose
        list of publishers changed receives anew."""
        await asyncio.gather(*(self._publish(member, hold=hold_camera) for member in members))
        await self.settle()

    async def watchers_join(self, names: list[str]) -> None:
        """People without camera and microphone who join one right after the other (their
        processes are started first, so only their connections take time)."""
        for member in await self.arrive(names, audio=False, video=False):
            await self._receive(member)

    async def arrive(self, names: list[str], *, audio: bool = True, video: bool = True) -> list[RemoteMember]:
        """Start the participants' processes; they connect on `enter`."""
        members = []
        for name in names:
            self._index += 1
            members.append(RemoteMember(name, (144 + 16 * self._index, 112), audio, video))
        await asyncio.gather(*(member.start() for member in members))
        self.members.update((member.name, member) for member in members)
        return members

    async def leave(self, name: str) -> None:
        member = self.members.pop(name)
        await self.room.detach(name)
        await self.room.detach(f"{name}/receive")
        await member.stop()
        await self.settle()

    async def share_screen(self, name: str, size: tuple[int, int]) -> None:
        """The participant shares the screen (or stops sharing) in the camera's place."""
        member = self.members[name]
        await member.ask("share_screen", size=list(size))
        member.size = size

    async def reconnect(self, name: str) -> None:
        """The participant's network went away and came back: both connections are gone
        without a goodbye, and fresh ones attach (replacing the old ones on the relay)."""
        member = self.members[name]
        await member.ask("drop")
        member.receiving = ""
        await self._publish(member)
        await self.settle()

    async def settle(self) -> None:
        """Everyone whose list of publishers changed makes a new receive connection."""
        await asyncio.gather(*(self._receive(member) for member in list(self.members.values())))

    async def _publish(self, member: RemoteMember, hold: bool = False) -> None:
        if not member.kinds:
            return  # neither camera nor microphone: receives only
        offer = await member.ask("publish", audio=member.audio, video=member.video, size=list(member.size), fps=self.fps,
                                 hold=hold)
        answer = await self.room.attach(member.name, offer["offer"], receive_from=[])
        await member.ask("published", answer=answer)
        member.generation += 1

    def publishers(self, member: RemoteMember) -> list[RemoteMember]:
        """The others who publish, in the relay's order (its relay_sources)."""
        return [self.members[name] for name in self.room.publishers()
                if name != member.name and name in self.members]

    async def _receive(self, member: RemoteMember) -> None:
        others = self.publishers(member)
        key = repr([(m.name, m.kinds, m.generation) for m in others])
        if key == member.receiving:
            return
        member.receiving = key
        if not others:
            await member.ask("stop_receiving")
            await self.room.detach(f"{member.name}/receive")
            return
        offer = await member.ask("receive", layout=[[m.name, kind] for m in others for kind in m.kinds])
        answer = await self.room.attach(f"{member.name}/receive", offer["offer"],
                                        receive_from=[m.name for m in others], publishing=False)
        await member.ask("received", answer=answer)

    async def close(self) -> None:
        await asyncio.gather(*(member.stop() for member in self.members.values()))

    def expected(self) -> list[tuple[str, str, str]]:
        """(receiver, publisher, kind) for every track everyone should get."""
        return [(receiver.name, publisher.name, kind) for receiver in self.members.values()
                for publisher in self.publishers(receiver) for kind in publisher.kinds]

    async def refresh(self) -> None:
        for name, member in self.members.items():
            self.counts[name] = await member.ask("counts")

    def decoded(self, receiver: str, publisher: str, kind: str) -> int:
        return self.counts.get(receiver, {}).get("decoded", {}).get(f"{publisher} {kind}", 0)

    def _relay_state(self, receiver: str, publisher: str, kind: str) -> str:
        connection_id = f"{receiver}/receive"
        if connection_id not in self.room.participant_ids:
            return "no receive connection on the relay"
        forward = next((f for f in self.room.participant(connection_id).forwards
                        if f.source.publisher_id == publisher and f.source.kind == kind), None)
        if forward is None:
            return "no forward on the relay"
        return (f"the relay forwarded {forward.packets_sent} packets, "
                f"waiting for a keyframe: {forward.waiting_for_keyframe}")

    async def until_everyone_receives_everyone(self, frames: int = 10, within: float = 40.0) -> None:
        """Each participant decodes `frames` more video frames from every other participant's
        camera, in that camera's picture size, and as many more audio frames from every
        microphone; else the assertion names each receiver, publisher and track that fell
        short."""
        expected = self.expected()
        await self.refresh()
        before = {e: self.decoded(*e) for e in expected}

        def short() -> list[tuple[str, str, str]]:
            return [e for e in expected if self.decoded(*e) < before[e] + frames]

        deadline = time.monotonic() + within
        while short() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            await self.refresh()
        failures = [f"{r} does not {'see' if k == 'video' else 'hear'} {p} ({k}: "
                    f"{before[(r, p, k)]} -> {self.decoded(r, p, k)} frames decoded; "
                    f"{self._relay_state(r, p, k)})" for r, p, k in short()]
        assert not failures, f"within {within:.0f} s:\n" + "\n".join(failures)
        wrong = [f"{r} sees {p} at {self.counts[r]['size_seen'][p]}, not {list(self.members[p].size)}: "
                 "someone else's video on that m-line" for r, p, k in expected
                 if k == "video" and self.counts[r]["size_seen"][p] != list(self.members[p].size)]
        assert not wrong, "\n".join(wrong)

    def first_frames(self) -> list[tuple[float, str, str]]:
        """(seconds, receiver, publisher) of every receive connection so far, quickest first."""
        return sorted((first - offered, receiver, publisher) for receiver, counts in self.counts.items()
                      for publisher, offered, first in counts["first_frames"])


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1:]))
