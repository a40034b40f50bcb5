"""Two homes behind NAT routers and the practice's server on the internet, all on this
machine: network namespaces joined by veth pairs, nftables masquerading as a home router
does, and Debian's coturn as the practice's TURN server (`use-auth-secret`).

    home1 192.168.1.2 -- 192.168.1.1 router1 100.64.1.2 -- 100.64.1.1 --+
    home2 192.168.2.2 -- 192.168.2.1 router2 100.64.2.2 -- 100.64.2.1 --+  internet: 100.64.0.1
    home3 192.168.3.2 -- 192.168.3.1 router3 100.64.3.2 -- 100.64.3.1 --+  (smartpractice, coturn,
                                                                            a relay worker)

Each router masquerades with `random,fully-random`: every new destination gets a fresh
random port (a symmetric NAT), and only the destination a packet went to may answer. Two
homes then cannot reach each other directly, not even with the addresses STUN tells them:
only TURN connects them. Nothing here touches an address outside these namespaces.

Every name starts with the branch's name and this process's id, so that two runs on one
machine do not collide; `remove()` ends what runs inside and deletes the namespaces."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from smartpractice.keys import services_key
from smartpractice.scheduling.consultations import Appointment
from tests.helpers import add_member, make_app, make_settings
from tests.p2p_peers import die_with_parent
from tests.redis_rooms import REDIS_URL, RedisProxy, drop_prefix, keys_under, new_prefix

SERVER = "100.64.0.1"
PORT = 8000  # the server's own namespace: no other listener there
HOMES = (1, 2, 3)  # a third person of a relayed call has a home of their own
CLONE_NEWNET = 0x40000000
COTURN = "/usr/bin/turnserver"
IP, NFT, SYSCTL = "/usr/sbin/ip", "/usr/sbin/nft", "/usr/sbin/sysctl"
ROOT = Path(__file__).resolve().parent.parent
# The compose file keeps coturn from relaying into carrier-grade NAT space, which is what
# this test's internet is made of (a real internet is not in it).
INTERNET_RANGE = "--denied-peer-ip=100.64.0.0-100.127.255.255"


def _run(*command: str, stdin: str | None = None) -> None:
    subprocess.run(command, input=stdin, text=True, check=True, timeout=20, capture_output=True)


def _delete(namespace: str) -> None:
    found = subprocess.run([IP, "netns", "pids", namespace], capture_output=True, text=True, timeout=10)
    for pid in found.stdout.split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run([IP, "netns", "delete", namespace], capture_output=True, timeout=10)


class Internet:
    def __init__(self) -> None:
        self.prefix = f"netns{os.getpid()}"
        self._made: list[str] = []

    def namespace(self, place: str) -> str:
        """`internet`, `router1`, `home1`, ..."""
        return f"{self.prefix}-{place}"

    def build(self) -> None:
        self._sweep_stale()
        internet = self._add("internet")
        _run(IP, "-n", internet, "addr", "add", f"{SERVER}/32", "dev", "lo")
        for home in HOMES:
            router, inside = self._add(f"router{home}"), self._add(f"home{home}")
            # Interface names need only be unique inside their namespace; made there directly.
            _run(IP, "link", "add", f"netns-r{home}", "netns", internet,
                 "type", "veth", "peer", "name", "netns-wan", "netns", router)
            _run(IP, "link", "add", "netns-lan", "netns", router,
                 "type", "veth", "peer", "name", "netns-up", "netns", inside)
            _run(IP, "-n", internet, "addr", "add", f"100.64.{home}.1/24", "dev", f"netns-r{home}")
            _run(IP, "-n", internet, "link", "set", f"netns-r{home}", "up")
            _run(IP, "-n", router, "addr", "add", f"100.64.{home}.2/24", "dev", "netns-wan")
            _run(IP, "-n", router, "addr", "add", f"192.168.{home}.1/24", "dev", "netns-lan")
            _run(IP, "-n", inside, "addr", "add", f"192.168.{home}.2/24", "dev", "netns-up")
            for name in ("netns-wan", "netns-lan"):
                _run(IP, "-n", router, "link", "set", name, "up")
            _run(IP, "-n", inside, "link", "set", "netns-up", "up")
            _run(IP, "-n", router, "route", "add", "default", "via", f"100.64.{home}.1")
            _run(IP, "-n", inside, "route", "add", "default", "via", f"192.168.{home}.1")
            _run(IP, "netns", "exec", router, SYSCTL, "-qw", "net.ipv4.ip_forward=1")
            _run(IP, "netns", "exec", router, NFT, "-f", "-", stdin="""
table ip netns_nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "netns-wan" masquerade random,fully-random
  }
}
""")

    def _add(self, place: str) -> str:
        name = self.namespace(place)
        _run(IP, "netns", "add", name)
        self._made.append(name)
        _run(IP, "-n", name, "link", "set", "lo", "up")
        # Only the IPv4 addresses above: no IPv6 path around the routers.
        _run(IP, "netns", "exec", name, SYSCTL, "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        return name

    def remove(self) -> None:
        """Ends every process still running in these namespaces (each one this test started),
        then deletes them with their interfaces. Safe to call after a half-built network."""
        for name in reversed(self._made):
            _delete(name)
        self._made.clear()

    @staticmethod
    def _sweep_stale() -> None:
        """What a test run killed before its teardown left behind (its process is gone)."""
        listed = subprocess.run([IP, "netns", "list"], capture_output=True, text=True, timeout=10).stdout
        for name in (line.split()[0] for line in listed.splitlines() if line.strip()):
            match = re.fullmatch(r"netns(\d+)-\w+", name)
            if match and not Path(f"/proc/{match.group(1)}").exists():
                _delete(name)

    def command_in(self, place: str, *command: str) -> list[str]:
        return [IP, "netns", "exec", self.namespace(place), *command]

    def block_udp(self, home: int) -> None:
        """The home's router lets no UDP out (a strict company or hotel network)."""
        _run(IP, "netns", "exec", self.namespace(f"router{home}"), NFT, "-f", "-", stdin="""
table inet netns_block {
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "netns-lan" meta l4proto udp drop
  }
}
""")

    def cut(self, home: int) -> None:
        """The home's line to the internet goes down. The router forgets its NAT mappings
        (the kernel drops a masquerading interface's connections when it goes down), as a
        home router does when its line reconnects."""
        _run(IP, "-n", self.namespace(f"router{home}"), "link", "set", "netns-wan", "down")

    def restore(self, home: int) -> None:
        router = self.namespace(f"router{home}")
        _run(IP, "-n", router, "link", "set", "netns-wan", "up")
        # The default route went with the link; the router's line comes back with it.
        _run(IP, "-n", router, "route", "replace", "default", "via", f"100.64.{home}.1")

    @contextlib.contextmanager
    def inside(self, place: str) -> Iterator[None]:
        """Sockets made in this block belong to that namespace and stay there. Only this
        thread moves (setns, through libc: os.setns arrives with Python 3.12)."""
        libc = ctypes.CDLL(None, use_errno=True)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.namespace(place)}", os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into the test's namespace failed")
            try:
                yield
            finally:
                if libc.setns(own, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back failed")
        finally:
            os.close(own)
            os.close(target)

    def listening_socket(self, port: int) -> socket.socket:
        """A TCP socket of the practice's server on the internet (for aiohttp's SockSite)."""
        with self.inside("internet"):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((SERVER, port))
        sock.listen(64)
        sock.setblocking(False)
        return sock


def compose_options(*, secret: str, realm: str, external_ip: str) -> list[str]:
    """coturn's command line as docker-compose.yml gives it, with the variables filled in."""
    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["turn"]["command"]
    values = {"TURN_SECRET": secret, "TURN_HOST": realm, "TURN_EXTERNAL_IP": external_ip}

    def filled(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        return values[name] if name in values else default.removeprefix("-")

    options = [re.sub(r"\$\{(\w+)(?::([-?][^}]*))?\}", filled, option) for option in command]
    assert INTERNET_RANGE in options, "docker-compose.yml's coturn changed: look at tests/networks.py again"
    return [option for option in options if option != INTERNET_RANGE and not option.startswith("--log-file")]


class Coturn:
    """Debian's coturn on the internet, checking credentials the way the product mints them
    (`use-auth-secret` with `static-auth-secret`), listening for TURN over UDP and TCP on
    3478, STUN included."""

    PORT = 3478

    def __init__(self, internet: Internet, secret: str, log: Path) -> None:
        self.internet, self.secret, self.log = internet, secret, log
        self.process: subprocess.Popen | None = None

    @property
    def urls(self) -> dict[str, str]:
        """SMARTPRACTICE_* settings for this server, as docs/deployment.md gives them."""
        return {"STUN_URLS": f"stun:{SERVER}:{self.PORT}",
                "TURN_URLS": f"turn:{SERVER}:{self.PORT}?transport=udp,turn:{SERVER}:{self.PORT}?transport=tcp",
                "TURN_SECRET": self.secret}

    def start(self) -> None:
        # Bound to the internet's one address; the log, the pid file and coturn's database in
        # the test's directory; the rest is the compose file's `turn` service word for word.
        options = [
            *compose_options(secret=self.secret, realm="praxis.test", external_ip=SERVER),
            "--listening-ip", SERVER, "--relay-ip", SERVER, "--log-file", str(self.log), "--simple-log",
            "--no-stdout-log", "--verbose", "--pidfile", str(self.log.with_suffix(".pid")),
            "--userdb", str(self.log.with_suffix(".db")),
        ]
        # bash's `exec -a` names the process after the branch, so it is plain whose it is.
        command = self.internet.command_in("internet", "bash", "-c", 'exec -a netns-coturn "$0" "$@"',
                                           COTURN, *options)
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        preexec_fn=die_with_parent)
        deadline = time.monotonic() + 15
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"coturn did not start (exit code {self.process.poll()}); see {self.log}")
            time.sleep(0.2)

    def _listening(self) -> bool:
        with self.internet.inside("internet"):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with probe:
            probe.settimeout(1)
            return probe.connect_ex((SERVER, self.PORT)) == 0

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# Fixtures (tests/conftest.py makes them known to every test module)

needs_namespaces = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "nft", "turnserver")),
    reason="needs root and Debian's iproute2, nftables and coturn: "
           "`apt-get install iproute2 nftables coturn` (.ci/run installs them)")


@pytest.fixture
def internet():
    network = Internet()
    try:
        network.build()
        yield network
    finally:
        network.remove()


@pytest.fixture
def coturn(internet, tmp_path):
    server = Coturn(internet, secrets.token_urlsafe(24), tmp_path / "coturn.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def practice_on_the_internet(internet: Internet, coturn: Coturn, tmp_path: Path, database_url: str,
                                   patients: tuple[str, ...], **settings: str) -> AsyncIterator[tuple[str, int]]:
    """The practice's server on the internet, TURN configured as docs/deployment.md says
    (and `settings` besides), and a consultation with `patients`, each let in already:
    (base URL, consultation id)."""
    base = f"http://{SERVER}:{PORT}"
    app = make_app(make_settings(tmp_path, database_url, BASE_URL=base, **coturn.urls, **settings))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.SockSite(runner, internet.listening_socket(PORT)).start()
        services = app[services_key]
        practice = (await services.practices.create("Praxis am Deich", admin_email="deich@example.org",
                                                    admin_username="deich")).practice
        doctor = await add_member(app, practice, "clinician", "dr-deich")
        ids = [await add_member(app, practice, "patient", name) for name in patients]
        plan = Appointment.parse("Kontrolle", services.clock.now() + timedelta(minutes=5), 20, now=services.clock.now())
        consultation = (await services.consultations.schedule(practice, doctor, plan, patient_ids=ids)).consultation
        for patient in ids:
            await services.waiting_room.state.admit(practice.id, consultation.id, f"u{patient}")
        yield base, consultation.id
    finally:
        await runner.cleanup()


@pytest.fixture
async def call_across_nat(internet, coturn, tmp_path, database_url):
    """The practice's server on the internet and a consultation with Erika and Paul, both
    let in: (base URL, consultation id)."""
    async with practice_on_the_internet(internet, coturn, tmp_path, database_url, ("erika", "paul")) as call:
        yield call


class RelayWorkerOnTheInternet:
    """`smartpractice relay-worker` as its own process on the internet, beside the server:
    its UDP sockets and the addresses it announces are the internet's, so browsers at home
    reach it only across their routers' NAT (or through coturn). It registers in Redis,
    which runs on this machine's loopback: a TCP forward on the internet's address
    (tests/redis_rooms.py's RedisProxy, its listening socket made in the namespace) leads
    there, for the worker only; the server in the test's process uses Redis directly."""

    REDIS_PORT = 6379
    PORTS = "42400-42599"

    def __init__(self, internet: Internet, env: dict[str, str], prefix: str, log: Path) -> None:
        self.internet, self.prefix, self.log = internet, prefix, log
        self.env = env
        self.redis = RedisProxy(REDIS_URL, listening=internet.listening_socket(self.REDIS_PORT))
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, coturn: Coturn) -> str:
        """Starts the worker and waits for it to register: its id."""
        await self.redis.start()
        env = {**os.environ, **self.env, "SMARTPRACTICE_REDIS_URL": self.redis.url,
               "SMARTPRACTICE_REDIS_PREFIX": self.prefix,
               **{f"SMARTPRACTICE_{name}": value for name, value in coturn.urls.items()}}
        command = self.internet.command_in("internet", sys.executable, "-m", "smartpractice", "relay-worker",
                                           "--ports", self.PORTS)
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(*command, env=env, cwd=ROOT, stdout=log, stderr=log,
                                                                preexec_fn=die_with_parent)
        lease = f"{self.prefix}:worker:"
        async with asyncio.timeout(30):
            while True:
                found = [key[len(lease):] for key in await keys_under(self.prefix)
                         if key.startswith(lease) and key.count(":") == 2]
                if found:
                    return found[0]
                assert self.process.returncode is None, self.log.read_text()
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        await self.redis.cut()
        if process is not None:  # shown with a failing test's output, without ICE's chatter
            lines = [line for line in self.log.read_text(errors="replace").splitlines() if "aioice" not in line]
            print(f"relay worker (exit {process.returncode}):", *lines[-100:], sep="\n")


@pytest.fixture
async def relayed_call_across_nat(internet, coturn, tmp_path, database_url, cli_env):
    """Erika, Paul and Oma, each at a home of their own, let in to a consultation whose server
    places relayed calls on a relay worker that runs on the internet: (base URL, consultation
    id, worker id, Redis key prefix). Three people: the call goes through the relay."""
    prefix = new_prefix()
    worker = RelayWorkerOnTheInternet(internet, cli_env, prefix, tmp_path / "relay-worker.log")
    try:
        worker_id = await worker.start(coturn)
        async with practice_on_the_internet(internet, coturn, tmp_path, database_url, ("erika", "paul", "oma"),
                                            REDIS_URL=REDIS_URL, REDIS_PREFIX=prefix, RELAY_WORKERS="yes") as call:
            yield (*call, worker_id, prefix)
    finally:
        await worker.stop()
        await drop_prefix(prefix)
