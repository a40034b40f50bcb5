"""Relay workers against a real Redis: calls placed by load and kept where they are, relay
requests routed to the call's worker and answered, a draining worker handing its calls
over, a worker that stops renewing its lease noticed and its calls moved, and the
`smartpractice relay-worker` command as a process of its own. Media flows between real
aiortc peers through the workers, as in tests/test_relay.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import aioice.stun
import pytest
from aiohttp.test_utils import unused_port
from aiortc import RTCSessionDescription
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from smartpractice.rooms import relay_lease
from smartpractice.rooms import relay_registry as registry
from smartpractice.rooms.call import call_channel
from smartpractice.rooms.redis_state import RedisRoomState, connect
from smartpractice.rooms.relay_routing import WorkerRelays
from smartpractice.rooms.relay_worker import RelayWorker
from smartpractice.rooms.relays import RelayMoved, RelayUnavailable
from smartpractice.rtc import Relay
from tests.redis_rooms import REDIS_URL, drop_prefix, keys_under, new_prefix, redis_state
from tests.rtc_peers import Peer, publisher, subscriber, until


@pytest.fixture(autouse=True)
def short_ice_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.stun, "RETRY_MAX", 1)
    monkeypatch.setattr(aioice.stun, "RETRY_RTO", 0.1)


@dataclass
class Running:
    worker: RelayWorker
    stop: asyncio.Event
    task: asyncio.Task[None]


@dataclass
class Cluster:
    prefix: str
    state: RedisRoomState
    relays: WorkerRelays
    workers: list[Running]

    def holding(self, call: int) -> Running:
        [running] = [r for r in self.workers if f"consultation:{call}" in r.worker.relay.room_names]
        return running

    async def placement(self, call: int) -> str | None:
        client = connect(REDIS_URL)
        try:
            found = await client.get(registry.key(self.prefix, "placement", call))
        finally:
            await client.aclose()
        return found and found.decode()


async def start_worker(prefix: str) -> Running:
    client, lease_client = connect(REDIS_URL), relay_lease.connect(REDIS_URL)
    worker = RelayWorker(client, Relay(), lease_redis=lease_client, prefix=prefix, address="127.0.0.1")
    stop = asyncio.Event()

    async def run() -> None:
        try:
            await worker.run(stop, stop_seconds=4)
        finally:
            await worker.relay.close()
            await client.aclose()
            lease_client.close()

    running = Running(worker, stop, asyncio.create_task(run()))
    async with asyncio.timeout(5):
        while not worker._lease.registered:  # noqa: ASYNC110 - its first beat registers it
            await asyncio.sleep(0.02)
    return running


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    prefix = new_prefix()
    workers = [await start_worker(prefix), await start_worker(prefix)]
    async with redis_state(prefix) as state:
        client = connect(REDIS_URL)
        relays = WorkerRelays(client, state, prefix=prefix, watch_seconds=0.5)
        await relays.start()
        try:
            yield Cluster(prefix, state, relays, workers)
        finally:
            await relays.close()
            await client.aclose()
            for running in workers:
                running.stop.set()
            await asyncio.gather(*(running.task for running in workers), return_exceptions=True)
            await drop_prefix(prefix)


async def attach(relays: WorkerRelays, call: int, peer: Peer, name: str, *, receive_from: tuple[str, ...] = ()):
    """A peer's connection through whichever worker holds the call."""
    await peer.pc.setLocalDescription(await peer.pc.createOffer())
    attached = await relays.attach(call, name, peer.pc.localDescription.sdp, publisher=name,
                                   receive_from=receive_from, publishing=not receive_from)
    await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=attached.answer, type="answer"))
    return attached


@contextlib.asynccontextmanager
async def peers(*made: Peer) -> AsyncIterator[tuple[Peer, ...]]:
    try:
        yield made
    finally:
        for peer in made:
            await peer.close()


async def test_a_call_lives_on_one_worker_and_the_next_call_on_the_least_loaded(cluster):
    async with peers(publisher(), subscriber(), publisher(), subscriber()) as (pub1, sub1, pub2, sub2):
        first = await attach(cluster.relays, 1, pub1, "u1")
        assert first.sources["publishers"] == [{"id": "u1", "kinds": ["video", "audio"], "generation": 1}]
        await attach(cluster.relays, 1, sub1, "u2", receive_from=("u1",))
        await attach(cluster.relays, 2, pub2, "u3")
        await attach(cluster.relays, 2, sub2, "u4", receive_from=("u3",))
        # Each call's two connections on one worker, the two calls on different workers.
        holder1, holder2 = cluster.holding(1), cluster.holding(2)
        assert holder1 is not holder2
        assert await cluster.placement(1) == holder1.worker.id and await cluster.placement(2) == holder2.worker.id
        assert sorted(holder1.worker.relay.room(f"consultation:{1}").participant_ids) == ["u1", "u2"]
        # Media passes through the workers to each subscriber.
        await until(lambda: sub1.frames["video"] >= 5 and sub2.frames["video"] >= 5, within=20)
        # A later reading has a later version: browsers drop a list that comes after a newer one.
        now = await cluster.relays.publishers(1)
        assert now["publishers"] == first.sources["publishers"]
        assert now["version"] > first.sources["version"]
        # Publishing again makes a new generation, which the browsers compare.
        pub1_again = publisher()
        async with peers(pub1_again):
            again = await attach(cluster.relays, 1, pub1_again, "u1")
            assert again.sources["publishers"][0]["generation"] == 2
        # The publisher leaves and comes back: a generation never used before, so a browser
        # whose receive offer was out during the leave still sees a list unlike its own.
        assert (await cluster.relays.detach(1, ["u1"], "u1"))["publishers"] == []
        pub1_back = publisher()
        async with peers(pub1_back):
            back = await attach(cluster.relays, 1, pub1_back, "u1")
            assert back.sources["publishers"] == [{"id": "u1", "kinds": ["video", "audio"], "generation": 3}]
            # The subscriber leaves; then the publisher: the call leaves its worker.
            assert (await cluster.relays.detach(1, ["u2"], "u2"))["publishers"] == back.sources["publishers"]
            assert await cluster.relays.detach(1, ["u1"], "u1") is None
        assert await cluster.placement(1) is None
        assert await cluster.relays.publishers(1) is None


async def test_a_call_that_turns_peer_to_peer_is_released_from_its_worker(cluster):
    async with peers(publisher()) as (pub,):
        await attach(cluster.relays, 5, pub, "u1")
        holder = cluster.holding(5)
        await cluster.relays.release(5)
        assert holder.worker.relay.room_names == []
        assert await cluster.placement(5) is None


async def test_a_draining_worker_takes_no_new_calls_and_sends_its_calls_elsewhere(cluster):
    async with peers(publisher(), subscriber()) as (pub, sub):
        await attach(cluster.relays, 7, pub, "u1")
        holder = cluster.holding(7)
        other = next(r for r in cluster.workers if r is not holder)
        async with cluster.state.subscribe(call_channel(7)) as news:
            holder.stop.set()
            assert (await asyncio.wait_for(news.get(), 5)) == {"type": "relay_moved"}
        # The participants publish afresh: the call is placed on the other worker.
        await pub.close()
        pub_again = publisher()
        async with peers(pub_again):
            await attach(cluster.relays, 7, pub_again, "u1")
            await attach(cluster.relays, 7, sub, "u2", receive_from=("u1",))
            assert await cluster.placement(7) == other.worker.id
            assert other.worker.relay.room("consultation:7").participant_ids == ["u1", "u2"]
            await until(lambda: sub.frames["video"] >= 5, within=20)
            # The drained worker's room emptied as its connection closed; it said goodbye.
            await asyncio.wait_for(holder.task, 5)
            assert not await cluster.relays._redis.exists(registry.key(cluster.prefix, "worker", holder.worker.id))
            assert holder.worker.id.encode() not in await cluster.relays._redis.smembers(
                registry.key(cluster.prefix, "workers"))


async def test_a_worker_that_stops_renewing_its_lease_loses_its_calls_to_another(cluster):
    async with peers(publisher(), subscriber()) as (pub, sub):
        await attach(cluster.relays, 9, pub, "u1")
        await attach(cluster.relays, 9, sub, "u2", receive_from=("u1",))
        await until(lambda: sub.frames["video"] >= 5, within=20)
        holder = cluster.holding(9)
        other = next(r for r in cluster.workers if r is not holder)
        async with cluster.state.subscribe(call_channel(9)) as news:
            killed = time.monotonic()
            holder.task.cancel()  # as SIGKILL: no drain, no goodbye
            with contextlib.suppress(asyncio.CancelledError):
                await holder.task
            assert (await asyncio.wait_for(news.get(), registry.LEASE_SECONDS + 3)) == {"type": "relay_moved"}
            noticed = time.monotonic() - killed
        assert noticed < registry.LEASE_SECONDS + 2, noticed
        # The browsers connect afresh, to the worker that is left, and media flows again.
        pub_again, sub_again = publisher(), subscriber()
        async with peers(pub_again, sub_again):
            await attach(cluster.relays, 9, pub_again, "u1")
            await attach(cluster.relays, 9, sub_again, "u2", receive_from=("u1",))
            assert cluster.holding(9) is other
            await until(lambda: sub_again.frames["video"] >= 5, within=20)


def held_answers(running: Running, gate: asyncio.Event) -> asyncio.Event:
    """The worker attaches as usual but keeps its answer until `gate` opens, as a busy
    worker does; the returned event is set once an attach has been made."""
    made = asyncio.Event()
    attach_now = running.worker._attach

    async def attach_late(call: int, request: dict) -> dict:
        reply = await attach_now(call, request)
        made.set()
        await gate.wait()
        return reply

    running.worker._attach = attach_late  # type: ignore[method-assign]
    return made


async def test_an_answer_from_a_worker_that_began_draining_meanwhile_is_not_passed_on(cluster):
    """The worker answers an offer after its call moved: the browser would put that answer
    on the fresh connection it made on relay_moved. It gets the error relay_moved instead,
    and its fresh offer lands on the other worker, where media flows."""
    gate = asyncio.Event()
    made = {running.worker.id: held_answers(running, gate) for running in cluster.workers}
    async with peers(publisher(), subscriber()) as (pub, sub):
        await pub.pc.setLocalDescription(await pub.pc.createOffer())
        async with cluster.state.subscribe(call_channel(13)) as news:
            offer = asyncio.create_task(cluster.relays.attach(
                13, "u1", pub.pc.localDescription.sdp, publisher="u1", receive_from=(), publishing=True))
            await asyncio.wait_for(asyncio.wait([asyncio.create_task(e.wait()) for e in made.values()],
                                                return_when=asyncio.FIRST_COMPLETED), 10)
            holder = cluster.holding(13)
            other = next(r for r in cluster.workers if r is not holder)
            holder.stop.set()
            assert (await asyncio.wait_for(news.get(), 5)) == {"type": "relay_moved"}
            gate.set()
            with pytest.raises(RelayMoved):
                await asyncio.wait_for(offer, 10)
        # The placement the answer came from is gone; the fresh offer goes to the other worker.
        assert await cluster.placement(13) is None
        pub_again = publisher()
        async with peers(pub_again):
            await attach(cluster.relays, 13, pub_again, "u1")
            await attach(cluster.relays, 13, sub, "u2", receive_from=("u1",))
            assert await cluster.placement(13) == other.worker.id
            await until(lambda: sub.frames["video"] >= 5, within=20)


async def test_an_offer_waiting_for_a_killed_worker_fails_as_moved_when_another_instance_reaps_it(cluster):
    """Instance A's offer waits for a worker that is killed; instance B notices first and
    tells the call. A's offer fails as moved within seconds, not when its request times out."""
    gate = asyncio.Event()
    made = {running.worker.id: held_answers(running, gate) for running in cluster.workers}
    client = connect(REDIS_URL)
    # A watches less often than B (the cluster's instance, every 0.5 s), so B mostly gives
    # the dead worker up first; either way A's offer must not wait out its 30 s.
    slow = WorkerRelays(client, cluster.state, prefix=cluster.prefix, watch_seconds=1.5, request_seconds=30)
    await slow.start()
    try:
        async with peers(publisher()) as (pub,):
            await pub.pc.setLocalDescription(await pub.pc.createOffer())
            offer = asyncio.create_task(slow.attach(
                15, "u1", pub.pc.localDescription.sdp, publisher="u1", receive_from=(), publishing=True))
            await asyncio.wait_for(asyncio.wait([asyncio.create_task(e.wait()) for e in made.values()],
                                                return_when=asyncio.FIRST_COMPLETED), 10)
            holder = cluster.holding(15)
            async with cluster.state.subscribe(call_channel(15)) as news:
                killed = time.monotonic()
                holder.task.cancel()  # as SIGKILL
                with contextlib.suppress(asyncio.CancelledError):
                    await holder.task
                assert (await asyncio.wait_for(news.get(), registry.LEASE_SECONDS + 3)) == {"type": "relay_moved"}
            with pytest.raises(RelayMoved):
                await asyncio.wait_for(offer, 10)
            assert time.monotonic() - killed < registry.LEASE_SECONDS + 5
    finally:
        for running in cluster.workers:
            for task in list(running.worker._handling):
                task.cancel()
        await slow.close()
        await client.aclose()


async def test_without_a_live_worker_an_offer_is_refused(cluster):
    for running in cluster.workers:
        running.stop.set()
    await asyncio.gather(*(running.task for running in cluster.workers))
    async with peers(publisher()) as (pub,):
        with pytest.raises(RelayUnavailable):
            await attach(cluster.relays, 11, pub, "u1")


async def test_the_relay_worker_command_registers_drains_on_sigterm_and_expires_after_sigkill(tmp_path):
    prefix = new_prefix()
    env = {**os.environ, "SMARTPRACTICE_REDIS_URL": REDIS_URL, "SMARTPRACTICE_REDIS_PREFIX": prefix,
           "SMARTPRACTICE_STOP_SECONDS": "3", "SMARTPRACTICE_DATA_DIR": str(tmp_path)}

    async def started() -> tuple[asyncio.subprocess.Process, str]:
        log = (tmp_path / f"worker-{time.monotonic_ns()}.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smartpractice", "relay-worker", "--ports", "41000-41099",
            env=env, stdout=log, stderr=log)
        async with asyncio.timeout(30):
            while not (found := [k for k in await keys_under(prefix)  # noqa: ASYNC110 - it registers
                                 if k.count(":") == 2 and k.startswith(f"{prefix}:worker:")]):
                await asyncio.sleep(0.1)
        return process, found[0]

    try:
        process, lease = await started()
        client = connect(REDIS_URL)
        try:
            registered = await client.hgetall(lease)
        finally:
            await client.aclose()
        assert registered[b"ports"] == b"41000-41099" and registered[b"draining"] == b"0"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 6) == 0
        assert await keys_under(prefix) == set()  # it said goodbye

        process, lease = await started()
        process.kill()
        await process.wait()
        async with asyncio.timeout(registry.LEASE_SECONDS + 2):
            while lease in await keys_under(prefix):  # noqa: ASYNC110 - Redis expires it
                await asyncio.sleep(0.1)
        for log in tmp_path.glob("worker-*.log"):
            assert "Traceback" not in log.read_text(), log.read_text()
    finally:
        await drop_prefix(prefix)


async def test_a_relay_worker_serves_its_calls_connections_and_forwarded_media_on_metrics(tmp_path):
    """`smartpractice relay-worker --metrics-port`: Prometheus' text format, behind the
    metrics token, with the figures of the call it forwards between two aiortc peers."""
    prefix, port, token = new_prefix(), unused_port(), METRICS_TOKEN
    env = {**os.environ, "SMARTPRACTICE_REDIS_URL": REDIS_URL, "SMARTPRACTICE_REDIS_PREFIX": prefix,
           "SMARTPRACTICE_STOP_SECONDS": "3", "SMARTPRACTICE_DATA_DIR": str(tmp_path)}
    refused = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smartpractice", "relay-worker", "--metrics-port", str(port), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    said = (await asyncio.wait_for(refused.communicate(), 30))[0].decode()
    assert refused.returncode != 0 and "SMARTPRACTICE_METRICS_TOKEN" in said, said

    log = (tmp_path / "worker.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smartpractice", "relay-worker", "--ports", "41100-41199", "--metrics-port", str(port),
        env={**env, "SMARTPRACTICE_METRICS_TOKEN": token}, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/metrics"

    try:
        async with redis_state(prefix) as state, aiohttp.ClientSession() as http:
            async with asyncio.timeout(30):
                while not [k for k in await keys_under(prefix) if k.count(":") == 2 and ":worker:" in k]:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            async with http.get(url) as anonymous:
                assert anonymous.status == 401
            async with http.get(url, headers={"Authorization": "Bearer " + "x" * 40}) as wrong:
                assert wrong.status == 401
            idle = await scrape(http, port)
            assert idle[("smartpractice_relay_rooms", ())] == 0
            assert idle[("smartpractice_relay_connections", ())] == 0
            assert idle[("smartpractice_relay_worker_draining", ())] == 0

            client = connect(REDIS_URL)
            relays = WorkerRelays(client, state, prefix=prefix)
            await relays.start()
            try:
                async with peers(publisher(), subscriber()) as (pub, sub):
                    await attach(relays, 21, pub, "u1")
                    await attach(relays, 21, sub, "u2", receive_from=("u1",))
                    await until(lambda: sub.frames["video"] >= 10 and sub.frames["audio"] >= 10, within=20)
                    busy = await scrape(http, port)
            finally:
                await relays.close()
                await client.aclose()
        assert busy[("smartpractice_relay_rooms", ())] == 1
        assert busy[("smartpractice_relay_connections", ())] == 2
        assert busy[("smartpractice_relay_streams", (("kind", "audio"),))] == 1
        assert busy[("smartpractice_relay_streams", (("kind", "video"),))] == 1
        # Ten frames of each kind reached the subscriber through this worker.
        assert busy[("smartpractice_relay_packets_received", ())] >= 20
        assert busy[("smartpractice_relay_packets_sent", ())] >= 20
        assert busy[("smartpractice_relay_bytes_received", ())] > 0
        assert busy[("smartpractice_relay_bytes_sent", ())] > 0
        for reason in ("malformed", "codec"):
            assert busy[("smartpractice_relay_packets_dropped", (("reason", reason),))] == 0
        assert ("smartpractice_relay_packets_dropped", (("reason", "not_connected"),)) in busy
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 6) == 0
        assert "Traceback" not in (tmp_path / "worker.log").read_text()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await drop_prefix(prefix)


STALLABLE = Path(__file__).with_name("stallable_worker.py")
METRICS_TOKEN = "m" * 40


async def scrape(http: aiohttp.ClientSession, port: int) -> dict:
    """A worker's /metrics: (name, sorted labels) -> value."""
    async with http.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


@dataclass
class WorkerProcess:
    process: asyncio.subprocess.Process
    id: str
    log: Path


async def worker_process(tmp_path: Path, prefix: str, ports: str, *, stallable: bool = False,
                         metrics_port: int | None = None, **env_extra: str) -> WorkerProcess:
    """`smartpractice relay-worker` as its own process (or tests/stallable_worker.py, the same
    command with signals that stall its loop), once it has registered; with `metrics_port`,
    serving /metrics there behind METRICS_TOKEN."""
    env = {**os.environ, "SMARTPRACTICE_REDIS_URL": REDIS_URL, "SMARTPRACTICE_REDIS_PREFIX": prefix,
           "SMARTPRACTICE_STOP_SECONDS": "3", "SMARTPRACTICE_DATA_DIR": str(tmp_path),
           "SMARTPRACTICE_METRICS_TOKEN": METRICS_TOKEN, **env_extra}
    program = [str(STALLABLE)] if stallable else ["-m", "smartpractice", "relay-worker"]
    options = ["--metrics-port", str(metrics_port)] if metrics_port else []
    before = await worker_ids(prefix)
    log = tmp_path / f"worker-{ports}.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(sys.executable, *program, "--ports", ports, *options,
                                                       env=env, stdout=out, stderr=out)
    async with asyncio.timeout(30):
        while not (fresh := await worker_ids(prefix) - before):  # noqa: ASYNC110 - it registers in Redis
            await asyncio.sleep(0.1)
    return WorkerProcess(process, fresh.pop(), log)


async def worker_ids(prefix: str) -> set[str]:
    lease = f"{prefix}:worker:"
    return {key[len(lease):] for key in await keys_under(prefix) if key.startswith(lease) and key.count(":") == 2}


@contextlib.asynccontextmanager
async def routed(prefix: str) -> AsyncIterator[tuple[RedisRoomState, WorkerRelays, Redis]]:
    """A web instance's side: the room state, the routing to the workers, and a client."""
    async with redis_state(prefix) as state:
        client = connect(REDIS_URL)
        relays = WorkerRelays(client, state, prefix=prefix, watch_seconds=0.5)
        await relays.start()
        try:
            yield state, relays, client
        finally:
            await relays.close()
            await client.aclose()


async def stopped(*workers: WorkerProcess) -> None:
    for worker in workers:
        if worker.process.returncode is None:
            worker.process.send_signal(signal.SIGCONT)
            worker.process.kill()
            await worker.process.wait()


async def test_a_busy_worker_keeps_its_lease_and_calls_and_reports_itself_full(tmp_path):
    """A worker process whose event loop is kept busy in turns of 1.5 s for 10 s, three
    leases and more (a worker past its ceiling): it keeps its lease and its call, whose
    media flows again once the load is gone, nobody tells the call to move; it reports
    itself full meanwhile, so a new call goes to the other worker although that one holds
    more calls."""
    prefix = new_prefix()
    busy = other = None
    try:
        async with routed(prefix) as (state, relays, client), peers(
                publisher(), subscriber(), publisher(), publisher(), publisher()) as (pub, sub, pub2, pub3, pub4):
            busy = await worker_process(tmp_path, prefix, "41200-41299", stallable=True)
            await attach(relays, 31, pub, "u1")
            await attach(relays, 31, sub, "u2", receive_from=("u1",))
            await until(lambda: sub.frames["video"] >= 5, within=20)
            other = await worker_process(tmp_path, prefix, "41300-41399")
            # A start on a loaded machine may report the new worker full in its first renewals
            # (registering writes full=0 before any), and placement would pass it over.
            await asyncio.sleep(registry.HEARTBEAT_SECONDS * 2)
            async with asyncio.timeout(15):
                while await client.hget(registry.key(prefix, "worker", other.id), "full") != b"0":  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
            # Two calls on the other worker: by calls alone, the next one would go to the busy one.
            await attach(relays, 32, pub2, "u3")
            await attach(relays, 33, pub3, "u4")
            assert {await client.get(registry.key(prefix, "placement", c)) for c in (32, 33)} == {other.id.encode()}
            lease = registry.key(prefix, "worker", busy.id)
            async with state.subscribe(call_channel(31)) as news:
                began = time.monotonic()
                busy.process.send_signal(signal.SIGUSR1)
                full_seen = False
                while time.monotonic() - began < 10:
                    assert await client.exists(lease), f"lease gone {time.monotonic() - began:.1f} s into the load"
                    assert await client.get(registry.key(prefix, "placement", 31)) == busy.id.encode()
                    if not full_seen and await client.hget(lease, "full") == b"1":
                        full_seen = True
                        await attach(relays, 34, pub4, "u5")
                        assert await client.get(registry.key(prefix, "placement", 34)) == other.id.encode()
                    await asyncio.sleep(0.25)
                assert full_seen, await client.hgetall(lease)
                # After the load: the same worker forwards the same call, and is no longer full.
                frames = sub.frames["video"]
                await until(lambda: sub.frames["video"] >= frames + 30, within=15)
                async with asyncio.timeout(15):  # a renewal's figures; a loaded machine may delay a few
                    while await client.hget(lease, "full") != b"0":  # noqa: ASYNC110 - renewed every second
                        await asyncio.sleep(0.2)
                assert news.empty(), news.get_nowait()
            assert await client.get(registry.key(prefix, "placement", 31)) == busy.id.encode()
        log = busy.log.read_text()
        assert "lost its lease" not in log and "has not answered" not in log and "Traceback" not in log, log
    finally:
        await stopped(*(w for w in (busy, other) if w is not None))
        await drop_prefix(prefix)


async def test_a_busy_worker_shows_full_and_its_loop_lag_on_metrics(tmp_path):
    """What the lease tells placement, on the worker's /metrics for the operator: not full
    and a short lag while idle; full, with the loop's lag past FULL_LAG_SECONDS, while its
    loop is kept busy in turns of 1.5 s; not full again once the load is gone."""
    prefix, port = new_prefix(), unused_port()
    full, lag = ("smartpractice_relay_worker_full", ()), ("smartpractice_relay_worker_loop_lag_seconds", ())
    worker = None
    try:
        worker = await worker_process(tmp_path, prefix, "41600-41699", stallable=True, metrics_port=port,
                                      STALL_BUSY_SECONDS="6")
        async with aiohttp.ClientSession() as http:
            # A start on a loaded machine may take a renewal or two to settle.
            async with asyncio.timeout(15):
                while (idle := await scrape(http, port))[full] != 0:  # noqa: ASYNC110 - renewed every second
                    await asyncio.sleep(0.2)
            assert idle[lag] < registry.FULL_LAG_SECONDS, idle
            assert ("smartpractice_relay_worker_cpu_ratio", ()) in idle
            worker.process.send_signal(signal.SIGUSR1)
            async with asyncio.timeout(10):
                # Full may show first from the CPU alone, the lag from the next renewal on.
                while (busy := await scrape(http, port))[full] != 1 or busy[lag] < registry.FULL_LAG_SECONDS:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
            assert worker.id in await worker_ids(prefix)  # busy, not dead: its lease lives
            async with asyncio.timeout(20):
                while (after := await scrape(http, port))[full] != 0:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
            assert after[lag] < registry.FULL_LAG_SECONDS, after
        worker.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(worker.process.wait(), 6) == 0
        assert "Traceback" not in worker.log.read_text(), worker.log.read_text()
    finally:
        await stopped(*(w for w in (worker,) if w is not None))
        await drop_prefix(prefix)


async def test_a_hung_or_stopped_worker_loses_its_calls_within_seconds(tmp_path):
    """A worker whose event loop hangs while its process lives stops renewing its lease
    once the loop has been silent for LOOP_SILENCE_SECONDS: its call moves to the other
    worker, where media flows. That worker SIGSTOPped: the call moves within the lease.
    Resumed, it finds its lease gone, lets go and registers again as a new worker, which
    takes the call when its participants connect afresh."""
    prefix = new_prefix()
    hung = other = None
    try:
        async with routed(prefix) as (state, relays, client):
            hung = await worker_process(tmp_path, prefix, "41400-41499", stallable=True)
            async with peers(publisher(), subscriber()) as (pub, sub):
                await attach(relays, 41, pub, "u1")
                await attach(relays, 41, sub, "u2", receive_from=("u1",))
                await until(lambda: sub.frames["video"] >= 5, within=20)
                other = await worker_process(tmp_path, prefix, "41500-41599")
                async with state.subscribe(call_channel(41)) as news:
                    began = time.monotonic()
                    hung.process.send_signal(signal.SIGUSR2)
                    within = registry.LOOP_SILENCE_SECONDS + registry.LEASE_SECONDS + 3
                    assert (await asyncio.wait_for(news.get(), within)) == {"type": "relay_moved"}
                    print(f"hung loop: call moved after {time.monotonic() - began:.1f} s")
            assert hung.process.returncode is None  # alive, but no longer trusted with calls
            async with peers(publisher(), subscriber()) as (pub, sub):
                await attach(relays, 41, pub, "u1")
                await attach(relays, 41, sub, "u2", receive_from=("u1",))
                assert await client.get(registry.key(prefix, "placement", 41)) == other.id.encode()
                await until(lambda: sub.frames["video"] >= 5, within=20)
                async with state.subscribe(call_channel(41)) as news:
                    began = time.monotonic()
                    other.process.send_signal(signal.SIGSTOP)
                    assert (await asyncio.wait_for(news.get(), registry.LEASE_SECONDS + 3)) == {"type": "relay_moved"}
                    print(f"SIGSTOP: call moved after {time.monotonic() - began:.1f} s")
                    other.process.send_signal(signal.SIGCONT)
            async with asyncio.timeout(10):
                while not (back := await worker_ids(prefix) - {other.id}):  # noqa: ASYNC110 - it registers again
                    await asyncio.sleep(0.1)
            [again] = back
            assert (await client.hget(registry.key(prefix, "worker", again), "pid")) == str(other.process.pid).encode()
            async with peers(publisher(), subscriber()) as (pub, sub):
                await attach(relays, 41, pub, "u1")
                await attach(relays, 41, sub, "u2", receive_from=("u1",))
                assert await client.get(registry.key(prefix, "placement", 41)) == again.encode()
                await until(lambda: sub.frames["video"] >= 5, within=20)
        assert "has not answered" in hung.log.read_text()
        assert "lost its lease" in other.log.read_text()
        for worker in (hung, other):
            assert "Traceback" not in worker.log.read_text(), worker.log.read_text()
    finally:
        await stopped(*(w for w in (hung, other) if w is not None))
        await drop_prefix(prefix)
