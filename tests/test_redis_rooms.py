"""What only the Redis room state does: several instances on one Redis see the same rooms
and each other's news; an instance that dies loses its lease and what it held expires,
announced by a survivor; a Redis that cannot be reached is said and refused, and news
flows again once it answers."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from datetime import UTC, datetime

import pytest

from smartpractice.rooms.state import CallPeer, Expired, RoomsUnavailable, WaitingPerson
from tests.redis_rooms import (
    REDIS_URL,
    RedisProxy,
    closed_port_url,
    drop_prefix,
    keys_under,
    new_prefix,
    redis_state,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# Short leases for the tests; still long enough for a loaded machine's event loop.
LEASE = {"lease_seconds": 3.0, "heartbeat_seconds": 0.5}
# News through a local Redis arrives within milliseconds; the bound is for a loaded machine.
DELIVERY = 10


@pytest.fixture
async def prefix():
    prefix = new_prefix()
    yield prefix
    await drop_prefix(prefix)


async def eventually(check, within: float = 10.0):
    """Poll an async check (it asks Redis) until it holds."""
    async with asyncio.timeout(within):
        while not (result := await check()):  # noqa: ASYNC110 - polls Redis
            await asyncio.sleep(0.1)
    return result


async def until_told(told: list[Expired], count: int, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while len(told) < count:  # noqa: ASYNC110 - a heartbeat task appends
            await asyncio.sleep(0.05)


def collector() -> tuple[list[Expired], object]:
    told: list[Expired] = []

    async def listen(expired: Expired) -> None:
        told.append(expired)

    return told, listen


async def test_two_instances_share_the_rooms_and_the_news(prefix):
    async with redis_state(prefix) as a, redis_state(prefix) as b:
        assert a.instance != b.instance
        await a.arrive(1, WaitingPerson(10, "u1", "Anna", NOW))
        await b.arrive(1, WaitingPerson(10, "u1", "Anna", NOW))  # her second tab, on the other instance
        [anna] = await b.waiting(1)
        assert anna.name == "Anna" and anna.connections == 2
        assert await b.depart(1, 10, "u1") is False
        assert (await a.waiting(1))[0].connections == 1

        async with a.subscribe("person:10:u1", "consultation:10") as inbox:
            await b.admit(1, 10, "u1")
            await b.publish("person:10:u1", {"type": "admitted"})
            await b.publish("consultation:10", {"type": "ended"})
            async with asyncio.timeout(DELIVERY):
                assert await inbox.get() == {"type": "admitted"}
                assert await inbox.get() == {"type": "ended"}
        assert await a.is_admitted(10, "u1") and await a.waiting(1) == []
        assert await a.depart(1, 10, "u1") is False

        await a.join_call(10, CallPeer("u1", "Anna", "patient", "sa"))
        await b.join_call(10, CallPeer("u2", "Dr. Berg", "clinician", "sb"))
        assert [p.key for p in await a.call_peers(10)] == ["u1", "u2"]
        await b.join_call(10, CallPeer("u1", "Anna", "patient", "sa2"))  # she reloads, landing on b
        assert await a.update_call_peer(10, "u1", "sa", state="reconnecting") is False
        assert [p.session for p in await a.call_peers(10)] == ["sa2", "sb"]
        await b.force_relay(10)
        assert await a.relay_forced(10)


CHILD = """
import asyncio, sys
from datetime import UTC, datetime
from smartpractice.rooms.redis_state import RedisRoomState, connect
from smartpractice.rooms.state import CallPeer, WaitingPerson

async def main():
    state = RedisRoomState(connect(sys.argv[2]), prefix=sys.argv[1], lease_seconds=3.0, heartbeat_seconds=0.5)
    await state.start()
    now = datetime.now(UTC)
    await state.arrive(1, WaitingPerson(10, "u1", "Anna", now))
    await state.arrive(1, WaitingPerson(10, "u2", "Bert", now))
    await state.join_call(11, CallPeer("u3", "Carl", "patient", "child-3"))
    await state.join_call(11, CallPeer("u5", "Emil", "patient", "child-5"))
    print(state.instance, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_killed_instance_loses_what_it_held_and_a_survivor_announces_it(prefix):
    told, listen = collector()
    async with redis_state(prefix, reconnect_grace=2.0, **LEASE) as survivor:
        survivor.on_expired(listen)
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, prefix, REDIS_URL,
                                                     stdout=asyncio.subprocess.PIPE)
        try:
            dead = (await asyncio.wait_for(child.stdout.readline(), 60)).decode().strip()
            await survivor.arrive(1, WaitingPerson(10, "u2", "Bert", NOW))  # Bert's second tab
            await survivor.join_call(11, CallPeer("u4", "Dr. Berg", "clinician", "survivor-4"))
            assert [(p.key, p.connections) for p in await survivor.waiting(1)] == [("u1", 1), ("u2", 2)]

            # Alive, the other instance keeps its lease: nothing expires.
            await asyncio.sleep(4)
            assert told == [] and len(await survivor.waiting(1)) == 2
        finally:
            child.kill()
            await child.wait()
        killed = time.monotonic()
        await until_told(told, 1, within=30)
        # The lease (3 s) ran out and a heartbeat (0.5 s) later it was reaped; the slack is
        # for a loaded machine, not part of the promise.
        assert time.monotonic() - killed < 3.0 + 0.5 + 10.0
        assert told == [Expired(practices=(1,), calls=(11,))]
        assert [(p.key, p.connections) for p in await survivor.waiting(1)] == [("u2", 1)]
        seats = {p.key: p.state for p in await survivor.call_peers(11)}
        assert seats == {"u3": "reconnecting", "u5": "reconnecting", "u4": "connected"}
        assert f"{prefix}:instance:{dead}:entries" not in await keys_under(prefix)

        # Emil's page reconnects to the survivor within the grace; Carl's does not.
        await survivor.join_call(11, CallPeer("u5", "Emil", "patient", "survivor-5"))
        await until_told(told, 2)
        assert told[1] == Expired(calls=(11,))
        assert {p.key: p.state for p in await survivor.call_peers(11)} == {"u4": "connected", "u5": "connected"}


async def test_an_instance_that_stops_cleanly_is_reaped_at_the_next_heartbeat(prefix):
    told, listen = collector()
    # A lease far longer than the wait allowed: being told at all shows nobody waited it out,
    # without a tight bound that a loaded machine breaks.
    lease = {**LEASE, "lease_seconds": 120.0}
    async with redis_state(prefix, **lease) as staying:
        staying.on_expired(listen)
        async with redis_state(prefix, **lease) as leaving:
            await leaving.arrive(3, WaitingPerson(30, "i9", "Gabi", NOW))
            await leaving.join_call(31, CallPeer("u1", "Anna", "patient", "s1"))
        await until_told(told, 1, within=30)
        assert told == [Expired(practices=(3,), calls=(31,))]
        assert await staying.waiting(3) == []


async def test_a_subscription_on_one_instance_outlives_another_subscriber_leaving(prefix):
    async with redis_state(prefix) as a, redis_state(prefix) as b:
        async with a.subscribe("practice:1") as first:
            async with a.subscribe("practice:1", "practice:2") as second:
                await b.publish("practice:2", {"n": 0})
                async with asyncio.timeout(DELIVERY):
                    assert await second.get() == {"n": 0}
            await b.publish("practice:1", {"n": 1})
            await b.publish("practice:2", {"n": 2})
            await b.publish("practice:1", {"n": 3})
            async with asyncio.timeout(DELIVERY):
                assert [await first.get(), await first.get()] == [{"n": 1}, {"n": 3}]
            assert second.empty()


async def test_an_unreachable_redis_is_logged_and_refused_not_raised_as_a_crash(prefix, caplog):
    caplog.set_level(logging.INFO, "smartpractice.rooms.redis_state")
    async with redis_state(prefix, url=closed_port_url(), **LEASE) as state:
        assert "unreachable" in caplog.text and "refuse new connections" in caplog.text
        assert await state.ready() is False
        for attempt in (state.arrive(1, WaitingPerson(1, "u1", "Anna", NOW)), state.depart(1, 1, "u1"),
                        state.waiting(1), state.admit(1, 1, "u1"), state.is_admitted(1, "u1"), state.clear(1, 1),
                        state.join_call(1, CallPeer("u1", "Anna", "patient", "s")),
                        state.update_call_peer(1, "u1", "s", audio=False), state.leave_call(1, "u1", "s"),
                        state.call_peers(1), state.force_relay(1), state.relay_forced(1),
                        state.publish("call:1", {"type": "chat"})):
            with pytest.raises(RoomsUnavailable) as refused:
                await attempt
            assert refused.value.code == "rooms_unavailable" and refused.value.status == 503
        with pytest.raises(RoomsUnavailable):
            async with state.subscribe("call:1"):
                pass
    assert caplog.text.count("unreachable") == 1  # said once, not at every try


async def test_news_flows_again_once_redis_answers(prefix, caplog):
    caplog.set_level(logging.INFO, "smartpractice.rooms.redis_state")
    proxy = RedisProxy()
    await proxy.start()
    async with redis_state(prefix, url=proxy.url, **LEASE) as behind, redis_state(prefix) as direct:
        async with behind.subscribe("call:7") as inbox:
            await direct.publish("call:7", {"n": 1})
            async with asyncio.timeout(DELIVERY):
                assert await inbox.get() == {"n": 1}
            await proxy.cut()
            assert await behind.ready() is False
            with pytest.raises(RoomsUnavailable):
                await behind.publish("call:7", {"n": 2})
            assert "unreachable" in caplog.text

            await proxy.start()
            assert await eventually(behind.ready)
            # The pub/sub connection is back and subscribed again: news reaches the inbox.
            async with asyncio.timeout(10):
                n = 3
                while True:
                    await direct.publish("call:7", {"n": n})
                    try:
                        async with asyncio.timeout(0.5):
                            if (await inbox.get())["n"] == n:
                                break
                    except TimeoutError:
                        n += 1
            await behind.publish("call:7", {"n": 100})
            async with asyncio.timeout(DELIVERY):
                while (await inbox.get())["n"] != 100:
                    pass
        assert "answers" in caplog.text
    await proxy.cut()
