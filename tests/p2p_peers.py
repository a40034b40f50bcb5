"""An aiortc participant of a two-person call that stands in for a browser where a browser
cannot be put behind a NAT: it runs in its own process (for the network tests, inside a
network namespace, started with `ip netns exec`), logs in, joins the call's signalling socket
and connects peer to peer as the browser client does (static/call/protocol.js,
connections.js, peer-link.js), with the ICE servers and TURN credentials of the server's
`welcome`. The test drives it with a JSON command per line on stdin.

What it does as the browser does:
- the impolite side (the smaller id) makes the first offer; an offer from a session it does
  not know starts a fresh connection; trickled candidates are added;
- after 15 s without a connection it sends `p2p_failed`;
- a socket that closes is rejoined after 1, 2, 4, 8, then every 10 s, and a new `welcome`
  closes the old connection (the other side starts over with the new session);
- it allocates a relayed candidate on every TURN server it is given (`allocate_everywhere`).

Where it differs: aiortc cannot restart ICE; and it pings the server at the server's own
heartbeat interval (web/sockets.py) to notice a dead socket, where a browser notices one
only when the server's close or its own next message meets the broken connection."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import re
import signal
import sys
import time
import traceback
from pathlib import Path

import aiohttp
from aioice.ice import StunProtocol, relayed_candidate
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcicetransport import parse_stun_turn_uri
from aiortc.sdp import candidate_from_sdp

from tests.group_peers import ToneMicrophone
from tests.rtc_peers import SmallCamera

ROOT = Path(__file__).resolve().parent.parent
PR_SET_NAME, PR_SET_PDEATHSIG = 15, 1
P2P_CONNECT_SECONDS = 15  # static/call/peer-link.js P2P_CONNECT_MS


def die_with_parent() -> None:
    """For a child process: killed when the test process ends, even without its teardown."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def reconnect_pause(attempt: int) -> float:
    """static/call/protocol.js reconnectPause."""
    return min(0.5 * 2 ** attempt, 10.0)


def ice_agent(pc: RTCPeerConnection):  # noqa: ANN201 - aioice's Connection
    """The one ICE agent of a connection whose m-lines are all bundled."""
    return pc.getTransceivers()[0].sender.transport.transport.iceGatherer._connection


def allocate_everywhere(pc: RTCPeerConnection, ice_servers: list[dict]) -> None:
    """A browser allocates a relayed candidate on each TURN URL it is given (UDP and TCP);
    aiortc uses only the first. This makes aiortc's ICE agent ask each one, and marks every
    relayed candidate with the transport it reaches its TURN server by (a browser's
    `relayProtocol`). Reaches into aioice's gathering, so the test fails if that moves."""
    turns = [(parse_stun_turn_uri(url), server) for server in ice_servers
             for url in ([server["urls"]] if isinstance(server["urls"], str) else server["urls"])
             if url.startswith("turn:")]
    agent = ice_agent(pc)
    agent.turn_server = None  # aiortc's own single allocation: replaced by the ones below
    own_gathering = agent.get_component_candidates

    async def gather(component: int, addresses: list[str], timeout: int = 5) -> list:  # noqa: ASYNC109 - aioice's
        async def allocate(uri: dict, server: dict):  # noqa: ANN202
            candidate, protocol = await relayed_candidate(
                component=component, hide_related_address=False, protocol_factory=lambda: StunProtocol(agent),
                turn_server=(uri["host"], uri["port"]), turn_username=server["username"],
                turn_password=server["credential"], turn_ssl=False, turn_transport=uri["transport"])
            protocol.relay_protocol = uri["transport"]
            agent._protocols.append(protocol)
            return candidate

        allocations = [asyncio.ensure_future(asyncio.wait_for(allocate(uri, server), timeout))
                       for uri, server in turns]
        candidates = await own_gathering(component, addresses, timeout)
        for result in await asyncio.gather(*allocations, return_exceptions=True):
            if not isinstance(result, BaseException):
                candidates.append(result)
        return candidates

    agent.get_component_candidates = gather


class PeerLink:
    """The direct connection to the other person, made afresh for each session of theirs."""

    def __init__(self, *, me: str, peer: str, session: str, ice_servers: list[dict], decoded: dict[str, int]) -> None:
        self.peer, self.session = peer, session
        self.polite = me > peer
        self.connected = False
        self.pc = RTCPeerConnection(RTCConfiguration(
            iceServers=[RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
                        for s in ice_servers],
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))  # a browser bundles
        self.pc.addTrack(ToneMicrophone())
        self.pc.addTrack(SmallCamera())
        allocate_everywhere(self.pc, ice_servers)
        self._decoded = decoded
        self._readers: list[asyncio.Task[None]] = []
        self.pc.on("track", self._read)

    def _read(self, track) -> None:  # noqa: ANN001
        async def count() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    await track.recv()
                    self._decoded[track.kind] += 1
        self._readers.append(asyncio.ensure_future(count()))

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())  # gathers all candidates first
        return self.pc.localDescription.sdp

    async def receive(self, kind: str, sdp: str) -> str | None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        if kind == "offer":
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            return self.pc.localDescription.sdp
        return None

    async def add_candidate(self, found: dict) -> None:
        candidate = candidate_from_sdp(found["candidate"].removeprefix("candidate:"))
        candidate.sdpMid, candidate.sdpMLineIndex = found.get("sdpMid"), found.get("sdpMLineIndex")
        await self.pc.addIceCandidate(candidate)

    def path(self) -> dict:
        """The selected candidate pair (a browser's `candidate-pair` stats with
        `selected: true`) and the candidates this side gathered."""
        agent = ice_agent(self.pc)
        pair = agent._nominated.get(1)

        def described(candidate, protocol=None) -> dict:  # noqa: ANN001
            return {"type": candidate.type, "address": f"{candidate.host}:{candidate.port}",
                    "relay_protocol": getattr(protocol, "relay_protocol", None)}
        protocols = {id(p.local_candidate): p for p in agent._protocols}
        gathered = [described(c, protocols.get(id(c))) for c in agent.local_candidates]
        if pair is None:
            return {"selected": None, "gathered": gathered}
        return {"selected": {"local": described(pair.local_candidate, pair.protocol),
                             "remote": described(pair.remote_candidate)}, "gathered": gathered}

    async def close(self) -> None:
        await self.pc.close()
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


class P2PClient:
    def __init__(self, base: str, consultation: int, username: str, password: str, heartbeat: float) -> None:
        self.base, self.consultation, self.heartbeat = base, consultation, heartbeat
        self.username, self.password = username, password
        self.me = self.session = self.topology = None
        self.ice_servers: list[dict] = []
        self.decoded = {"audio": 0, "video": 0}  # from the other person, over every connection
        self.link: PeerLink | None = None
        self.sockets_opened = 0
        self.faults: list[str] = []
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._connect_timer: asyncio.TimerHandle | None = None
        self._stopped = False

    async def run(self) -> None:
        async with aiohttp.ClientSession(base_url=self.base, cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            login = await (await session.get("/login")).text()
            token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
            response = await session.post("/login", data={"identifier": self.username, "password": self.password,
                                                          "csrf_token": token})
            assert response.ok, response.status
            attempt = 0
            while not self._stopped:
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with session.ws_connect(f"/c/{self.consultation}/call/ws", headers={"Origin": self.base},
                                                  heartbeat=self.heartbeat) as socket:
                        self._socket, attempt = socket, 0
                        self.sockets_opened += 1
                        await self._converse(socket)
                        if socket.close_code in (4000, 4001, 4002):  # replaced, ended, outdated: final
                            return
                attempt += 1
                await asyncio.sleep(reconnect_pause(attempt))

    async def _converse(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        """Messages are handled one after the other, as protocol.js's inbox does, while the
        socket goes on reading (and answering the heartbeat) during a slow one."""
        inbox: asyncio.Queue[dict] = asyncio.Queue()

        async def handle() -> None:
            while True:
                message = await inbox.get()
                try:
                    await self._on(message)
                except Exception:  # noqa: BLE001 - shown to the test by counts()
                    self.faults.append(traceback.format_exc())

        handling = asyncio.ensure_future(handle())
        try:
            await socket.send_json({"type": "join", "version": 1})
            async for message in socket:
                if message.type == aiohttp.WSMsgType.TEXT:
                    inbox.put_nowait(json.loads(message.data))
        finally:
            handling.cancel()
            await asyncio.gather(handling, return_exceptions=True)

    async def _on(self, message: dict) -> None:
        kind = message["type"]
        if kind == "welcome":
            self.me, self.session, self.ice_servers = message["id"], message["session"], message["ice_servers"]
            await self._close_link()  # connections.reset(): the new session starts over
        elif kind == "participants":
            await self._participants(message)
        elif kind in ("offer", "answer") and self.topology == "p2p":
            await self._description(message)
        elif kind == "candidate" and self.link and message["candidate"] and self._is_link(message):
            await self.link.add_candidate(message["candidate"])
        elif kind == "ice_servers":
            self.ice_servers = message["ice_servers"]

    async def _participants(self, message: dict) -> None:
        if message["topology"] != self.topology:
            await self._close_link()
            self.topology = message["topology"]
        if self.topology != "p2p":
            return  # a relayed call is tests/group_peers.py's CallClient; the test sees the topology
        others = [p for p in message["participants"] if p["id"] != self.me]
        other = others[0] if others else None
        if self.link and not (other and self.link.peer == other["id"] and self.link.session == other["session"]):
            await self._close_link()
        if other and not self.link and other["state"] == "connected":
            await self._open_link(other["id"], other["session"])

    def _is_link(self, message: dict) -> bool:
        return self.link is not None and self.link.peer == message["from"] and self.link.session == message["session"]

    async def _description(self, message: dict) -> None:
        if message["type"] == "offer" and not self._is_link(message):
            await self._close_link()
            await self._open_link(message["from"], message["session"], offer=False)
        if self._is_link(message):
            answer = await self.link.receive(message["type"], message["sdp"])
            if answer is not None:
                await self._signal("answer", answer)

    async def _open_link(self, peer: str, session: str, offer: bool = True) -> None:
        self.link = PeerLink(me=self.me, peer=peer, session=session, ice_servers=self.ice_servers,
                             decoded=self.decoded)
        link = self.link
        link.pc.on("connectionstatechange", lambda: self._state(link))
        self._connect_timer = asyncio.get_running_loop().call_later(P2P_CONNECT_SECONDS, self._not_connected, link)
        if offer and not link.polite:
            await self._signal("offer", await link.offer())

    def _state(self, link: PeerLink) -> None:
        if link.pc.connectionState == "connected":
            link.connected = True
        elif link.pc.connectionState == "failed" and not link.connected:
            self._not_connected(link)
        # A path that worked and failed: the browser restarts ICE once; aiortc cannot.

    def _not_connected(self, link: PeerLink) -> None:
        if link is self.link and link.pc.connectionState != "connected" and self._socket is not None:
            asyncio.ensure_future(self._socket.send_json({"type": "p2p_failed"}))

    async def _signal(self, kind: str, sdp: str) -> None:
        await self._socket.send_json({"type": kind, "to": self.link.peer, "to_session": self.link.session,
                                      "sdp": sdp})

    async def _close_link(self) -> None:
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None
        link, self.link = self.link, None
        if link is not None:
            await link.close()

    async def counts(self) -> dict:
        link = self.link
        return {"decoded": dict(self.decoded), "topology": self.topology, "session": self.session,
                "sockets_opened": self.sockets_opened, "faults": self.faults,
                "state": link.pc.connectionState if link else None, "path": link.path() if link else None}

    async def stop(self) -> dict:
        self._stopped = True
        await self._close_link()
        if self._socket is not None:
            await self._socket.close()
        return {}


async def serve(base: str, consultation: str, username: str, password: str, heartbeat: str) -> None:
    ctypes.CDLL(None).prctl(PR_SET_NAME, b"netns-peer")  # `ps -o comm` tells whose process it is
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    client = P2PClient(base, int(consultation), username, password, float(heartbeat))
    running = asyncio.ensure_future(client.run())
    try:
        while line := await reader.readline():
            if running.done():
                running.result()  # what went wrong, on the test's side of the pipe
            command = json.loads(line)
            answer = await getattr(client, command["do"])()
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        await client.stop()
        running.cancel()


class Participant:
    """The test's side: one stand-in's process, in the namespace `command` puts it in."""

    def __init__(self, name: str, command: list[str]) -> None:
        self.name, self.command = name, command
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, base: str, consultation: int, username: str, password: str) -> None:
        # The server's heartbeat, read here: importing the web package would slow every peer's start.
        from smartpractice.web.sockets import HEARTBEAT_SECONDS

        self._process = await asyncio.create_subprocess_exec(
            *self.command, sys.executable, "-m", "tests.p2p_peers", base, str(consultation), username, password,
            str(HEARTBEAT_SECONDS),
            cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, preexec_fn=die_with_parent)

    async def counts(self) -> dict:
        process = self._process
        process.stdin.write(b'{"do": "counts"}\n')
        await process.stdin.drain()
        async with asyncio.timeout(60):  # a busy machine takes a while to start a Python process
            line = await process.stdout.readline()
        assert line, f"{self.name}'s process ended (exit code {process.returncode})"
        return json.loads(line)

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.stdin.close()
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def until_connected(participants: list[Participant], within: float) -> dict[str, dict]:
    """Everyone's counts once every connection is up; else names who is not connected."""
    deadline = time.monotonic() + within
    while True:
        counts = {p.name: await p.counts() for p in participants}
        waiting = [name for name, c in counts.items() if c["state"] != "connected"]
        if not waiting or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert not waiting, f"within {within:.0f} s not connected: " + "; ".join(
        f"{name} (topology {counts[name]['topology']}, state {counts[name]['state']}, path {counts[name]['path']})"
        for name in waiting)
    return counts


async def until_frames_flow(participants: list[Participant], frames: int, within: float) -> dict[str, dict]:
    """Each participant decodes `frames` more video frames and audio frames from the other;
    else the assertion names who does not see or hear the other."""
    before = {p.name: (await p.counts())["decoded"] for p in participants}
    deadline = time.monotonic() + within
    while True:
        counts = {p.name: await p.counts() for p in participants}
        short = [(name, kind) for name in counts for kind in ("video", "audio")
                 if counts[name]["decoded"][kind] < before[name][kind] + frames]
        if not short or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    assert not short, f"within {within:.0f} s:\n" + "\n".join(
        f"{name} does not {'see' if kind == 'video' else 'hear'} the other: {before[name][kind]} -> "
        f"{counts[name]['decoded'][kind]} {kind} frames decoded (state {counts[name]['state']}, "
        f"path {counts[name]['path'] and counts[name]['path']['selected']})" for name, kind in short)
    return counts


if __name__ == "__main__":
    asyncio.run(serve(*sys.argv[1:6]))
