"""Where browsers reach the relay: every candidate and every socket of its connections
inside SMARTPRACTICE_RELAY_PORTS, its public address behind 1:1 NAT, its own STUN and
TURN servers (coturn on loopback, credentials minted as for the browsers), and a range
that runs out refusing the next connection with a message. Real aiortc peers; the
sockets as the kernel lists them for this process."""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import subprocess
import time
from datetime import timedelta

import pytest
from aiohttp.test_utils import unused_port
from aioice import Candidate
from aiortc import RTCSessionDescription
from sqlalchemy import update

from smartpractice.clock import Clock
from smartpractice.config import Settings
from smartpractice.keys import engine_key, services_key
from smartpractice.rooms.ice import IceServers
from smartpractice.rtc import NoFreePort, Relay, RelayNetwork
from smartpractice.scheduling.consultations import Appointment
from smartpractice.services import relay_for
from smartpractice.storage.tables import practices
from tests.helpers import (
    JOIN,
    ORIGIN,
    add_member,
    log_in,
    make_app,
    make_settings,
    next_of,
    participants,
)
from tests.rtc_peers import Peer, SmallCamera, publisher, subscriber, until

COTURN = "/usr/bin/turnserver"
GERMAN_FULL = ("Der Server hat gerade keine freie Verbindung für dieses Gespräch. Bitte versuchen Sie es in "
               "einigen Minuten noch einmal.")


def udp_sockets_of_this_process() -> set[tuple[str, int]]:
    """(local address in hex, port) of every UDP socket this process holds, from the
    kernel's tables: what a firewall sees, whoever made the socket."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                if fields[9] in inodes:
                    address, port = fields[1].split(":")
                    found.add((address, int(port, 16)))
    return found


def free_range(size: int) -> range:
    """`size` ports that nothing on this machine holds right now, on IPv4 or IPv6."""
    while True:
        first = random.randrange(41000, 48000)
        ports = range(first, first + size)
        if all(_free(port) for port in ports):
            return ports


def _free(port: int) -> bool:
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):  # noqa: S104
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                return False
    return True


def candidates_of(sdp: str) -> list[Candidate]:
    return [Candidate.from_sdp(line[len("a=candidate:"):]) for line in sdp.splitlines()
            if line.startswith("a=candidate:")]


class LoopbackCoturn:
    """Debian's coturn on 127.0.0.1 with `use-auth-secret`, as the product's credentials expect."""

    def __init__(self, directory) -> None:  # noqa: ANN001
        self.port = unused_port()
        self.secret = secrets.token_hex(16)
        relay_first = random.randrange(50000, 59000)
        self.process = subprocess.Popen([
            COTURN, "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={self.port}",
            f"--min-port={relay_first}", f"--max-port={relay_first + 50}", "--use-auth-secret",
            f"--static-auth-secret={self.secret}", "--realm=praxis.test", "--no-cli", "--no-tls", "--no-dtls",
            "--fingerprint", "--allow-loopback-peers", "--log-file", str(directory / "coturn.log"), "--simple-log",
            "--pidfile", str(directory / "coturn.pid"), "--userdb", str(directory / "coturn.db"),
        ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"coturn did not start; see {directory / 'coturn.log'}")
            time.sleep(0.1)

    def _listening(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    @property
    def settings(self) -> dict[str, str]:
        return {"STUN_URLS": f"stun:127.0.0.1:{self.port}",
                "TURN_URLS": f"turn:127.0.0.1:{self.port}?transport=udp", "TURN_SECRET": self.secret}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def coturn_on_loopback(tmp_path):
    if not shutil.which(COTURN):
        pytest.skip("needs Debian's coturn: `apt-get install coturn` (.ci/run installs it)")
    server = LoopbackCoturn(tmp_path)
    yield server
    server.stop()


async def connect(room, participant_id: str, peer: Peer) -> str:
    """The relay's answer to the peer's offer, the peer's candidates gathered before."""
    answer = await room.attach(participant_id, peer.pc.localDescription.sdp)
    await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return answer


async def offer(peer: Peer) -> Peer:
    await peer.pc.setLocalDescription(await peer.pc.createOffer())
    return peer


async def test_every_candidate_and_socket_of_the_relay_is_inside_its_range(tmp_path, coturn_on_loopback):
    ports = free_range(40)
    settings = Settings.from_env({}, DATA_DIR=str(tmp_path), RELAY_PORTS=f"{ports[0]}-{ports[-1]}",
                                 **coturn_on_loopback.settings)
    relay = relay_for(settings, IceServers(settings=settings, clock=Clock()))
    room = relay.room("ports")
    camera, viewer = await offer(publisher()), await offer(subscriber())
    # The peers' own sockets exist now; whatever appears from here on is the relay's.
    before = udp_sockets_of_this_process()
    try:
        answers = [await connect(room, "camera", camera), await connect(room, "viewer", viewer)]
        await until(lambda: viewer.frames["video"] >= 10 and viewer.frames["audio"] >= 10, within=20)
        relays_sockets = udp_sockets_of_this_process() - before

        # Its own STUN and TURN servers, a credential minted for each connection (that
        # coturn took it shows below: the answers hold relayed candidates).
        [stun, turn] = relay.network.ice_servers()
        assert stun.urls == settings.stun_urls[0] and turn.urls == list(settings.turn_urls)
        assert turn.username.endswith(":relay") and turn.credential
    finally:
        await camera.close()
        await viewer.close()
        await relay.close()

    # Two connections, each with an IPv4 and an IPv6 host socket (or one, on a machine
    # with one address family) and a TURN allocation.
    assert len(relays_sockets) >= 4, relays_sockets
    assert all(port in ports for _, port in relays_sockets), (ports, relays_sockets)
    candidates = [candidate for answer in answers for candidate in candidates_of(answer)]
    assert {"host", "srflx", "relay"} <= {candidate.type for candidate in candidates}, candidates
    for candidate in candidates:
        # A relayed candidate's own port is coturn's; its related port is the relay's socket.
        local_port = candidate.related_port if candidate.type == "relay" else candidate.port
        assert local_port in ports, candidate.to_sdp()


def only_relayed(sdp: str) -> str:
    """The description with no candidates but TURN relayed ones."""
    return "".join(line for line in sdp.splitlines(keepends=True)
                   if not line.startswith("a=candidate:") or " typ relay" in line)


async def test_media_flows_through_the_relays_own_turn_allocation(tmp_path, coturn_on_loopback):
    """Each side knows only the other's TURN relayed address: the one path is the relay's
    allocation on coturn, which its packet path (RtpInput, RtpOutput) must send and read
    through, though it is no socket of the relay's own."""
    ports = free_range(20)
    settings = Settings.from_env({}, DATA_DIR=str(tmp_path), RELAY_PORTS=f"{ports[0]}-{ports[-1]}",
                                 **coturn_on_loopback.settings)
    ice = IceServers(settings=settings, clock=Clock())
    relay = relay_for(settings, ice)
    room = relay.room("turn")
    camera, viewer = publisher(ice.for_relay()), subscriber(ice.for_relay())
    try:
        for name, peer in (("camera", camera), ("viewer", viewer)):
            await offer(peer)
            answer = await room.attach(name, only_relayed(peer.pc.localDescription.sdp))
            await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=only_relayed(answer), type="answer"))
        await until(lambda: viewer.frames["video"] >= 10 and viewer.frames["audio"] >= 10, within=30)
        for name in ("camera", "viewer"):
            [transport] = {t.receiver.transport.transport for t in room.participant(name).pc.getTransceivers()}
            assert transport._connection._nominated[1].local_candidate.type == "relay", name
    finally:
        await camera.close()
        await viewer.close()
        await relay.close()


async def test_the_public_address_is_announced_with_the_ports_of_the_host_candidates():
    ports = free_range(8)
    relay = Relay(RelayNetwork(ports=ports, public_address="203.0.113.7"))
    room = relay.room("nat")
    camera, viewer = await offer(publisher()), await offer(subscriber())
    try:
        answer = await connect(room, "camera", camera)
        await connect(room, "viewer", viewer)
        # Browsers on the relay's own network still reach it directly.
        await until(lambda: viewer.frames["video"] >= 5, within=20)
    finally:
        await camera.close()
        await viewer.close()
        await relay.close()
    candidates = candidates_of(answer)
    hosts = {(c.host, c.port) for c in candidates if c.type == "host" and ":" not in c.host}
    announced = [c for c in candidates if c.host == "203.0.113.7"]
    assert hosts and announced
    assert {(c.related_address, c.related_port) for c in announced} == hosts
    assert all(c.type == "srflx" and c.port == c.related_port and c.port in ports for c in announced)


async def test_a_range_that_ran_out_refuses_the_next_connection():
    [port] = ports = free_range(1)
    relay = Relay(RelayNetwork(ports=ports))
    room = relay.room("small")
    camera, viewer = await offer(publisher()), await offer(subscriber())
    try:
        answer = await connect(room, "camera", camera)
        assert {c.port for c in candidates_of(answer)} == {port}
        with pytest.raises(NoFreePort, match=f"no free UDP port in {port}-{port}"):
            await room.attach("viewer", viewer.pc.localDescription.sdp)
        # The refused connection is gone; the one that got the port stays.
        assert room.participant_ids == ["camera"]
    finally:
        await camera.close()
        await viewer.close()
        await relay.close()


async def test_a_participant_the_range_has_no_port_for_gets_a_message_not_a_500(aiohttp_client, tmp_path,
                                                                                 database_url, clock, caplog):
    [port] = free_range(1)
    settings = make_settings(tmp_path, database_url, RELAY_PORTS=f"{port}-{port}")
    client = await aiohttp_client(make_app(settings, clock=clock))
    services = client.app[services_key]
    practice = (await services.practices.create("Praxis Enge", admin_email="e@example.org",
                                                admin_username="enge")).practice
    async with client.app[engine_key].begin() as conn:
        await conn.execute(update(practices).where(practices.c.id == practice.id).values(relay_policy="relay"))
    doctor = await add_member(client.app, practice, "clinician", "dr-enge")
    plan = Appointment.parse("", clock.now() + timedelta(minutes=5), 15, now=clock.now())
    consultation = (await services.consultations.schedule(practice, doctor, plan)).consultation
    await log_in(client, "dr-enge")
    socket_ = await client.ws_connect(f"/c/{consultation.id}/call/ws", headers=ORIGIN)
    await socket_.send_json(JOIN)
    await next_of(socket_, "welcome")
    assert (await participants(socket_, 1))["topology"] == "relay"
    camera, viewer = Peer(), Peer()
    camera.pc.addTransceiver(SmallCamera(), direction="sendonly")
    viewer.pc.addTransceiver("video", direction="recvonly")
    try:
        for peer, purpose in ((camera, "publish"), (viewer, "receive")):
            await offer(peer)
            await socket_.send_json({"type": "relay_offer", "purpose": purpose,
                                     "sdp": peer.pc.localDescription.sdp, "receive_from": []})
        await next_of(socket_, "relay_answer", within=10)
        error = await next_of(socket_, "error", within=10)
        assert error["code"] == "relay_full" and error["message"] == GERMAN_FULL
        assert error["about"] == "relay_offer" and error["purpose"] == "receive"
        assert f"no free UDP port in {port}-{port} (SMARTPRACTICE_RELAY_PORTS)" in caplog.text
        assert "Traceback" not in caplog.text
        assert not socket_.closed
    finally:
        await camera.close()
        await viewer.close()
        await socket_.close()
