"""The RoomState contract, the same tests for both implementations: in memory (one
process) and in a real Redis (several instances)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from smartpractice.rooms.state import CallPeer, InMemoryRoomState, WaitingPerson
from tests.redis_rooms import drop_prefix, new_prefix, redis_state

T0 = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)


def person(cid: int, key: str, name: str, minutes: int = 0) -> WaitingPerson:
    return WaitingPerson(cid, key, name, T0 + timedelta(minutes=minutes))


def peer(key: str, session: str, role: str = "patient", name: str = "") -> CallPeer:
    return CallPeer(key, name or key.upper(), role, session)


@pytest.fixture(params=["memory", "redis"])
async def state(request):
    if request.param == "memory":
        yield InMemoryRoomState()
        return
    prefix = new_prefix()
    try:
        async with redis_state(prefix) as shared:
            yield shared
    finally:
        await drop_prefix(prefix)


async def next_news(queue: asyncio.Queue[dict], within: float = 3.0) -> dict:
    async with asyncio.timeout(within):
        return await queue.get()


async def test_the_waiting_list_is_in_order_of_arrival(state):
    await state.arrive(1, person(10, "u1", "Anna", minutes=2))
    await state.arrive(1, person(11, "u2", "Jörg Größe", minutes=0))
    await state.arrive(1, person(10, "i7", "Gabi Gast", minutes=5))
    await state.arrive(2, person(20, "u3", "Elsewhere"))
    waiting = await state.waiting(1)
    assert [(p.consultation_id, p.key, p.name) for p in waiting] == [
        (11, "u2", "Jörg Größe"), (10, "u1", "Anna"), (10, "i7", "Gabi Gast")]
    assert waiting[0] == person(11, "u2", "Jörg Größe")  # the time comes back to the microsecond
    assert [p.key for p in await state.waiting(2)] == ["u3"]
    assert await state.waiting(3) == []

    assert await state.depart(1, 10, "u1") is True
    assert [p.key for p in await state.waiting(1)] == ["u2", "i7"]
    assert await state.depart(1, 10, "u1") is False  # gone already
    assert await state.depart(1, 99, "u9") is False  # never there
    assert await state.depart(2, 11, "u2") is False  # another practice


async def test_a_second_tab_counts_once_and_keeps_the_first_arrival(state):
    await state.arrive(1, person(10, "u1", "Anna", minutes=1))
    await state.arrive(1, person(10, "u1", "Anna", minutes=4))
    [anna] = await state.waiting(1)
    assert anna.connections == 2 and anna.since == T0 + timedelta(minutes=1)
    assert await state.depart(1, 10, "u1") is False  # the other tab still waits
    [anna] = await state.waiting(1)
    assert anna.connections == 1
    assert await state.depart(1, 10, "u1") is True
    assert await state.waiting(1) == []


async def test_admitting_takes_every_tab_off_the_list(state):
    await state.arrive(1, person(10, "u1", "Anna"))
    await state.arrive(1, person(10, "u1", "Anna"))
    await state.arrive(1, person(10, "u2", "Bert", minutes=1))
    assert await state.is_admitted(10, "u1") is False
    await state.admit(1, 10, "u1")
    assert [p.key for p in await state.waiting(1)] == ["u2"]
    assert await state.is_admitted(10, "u1") is True
    assert await state.is_admitted(10, "u2") is False
    assert await state.is_admitted(11, "u1") is False
    # The admitted person's waiting pages close afterwards: that is no departure.
    assert await state.depart(1, 10, "u1") is False
    assert await state.depart(1, 10, "u1") is False
    assert [p.key for p in await state.waiting(1)] == ["u2"]
    await state.admit(1, 10, "u9")  # nobody waiting under that key: admitted all the same
    assert await state.is_admitted(10, "u9") is True


async def test_clearing_a_consultation_forgets_everything_about_it_and_nothing_else(state):
    for cid, key in ((10, "u1"), (10, "u2"), (11, "u3")):
        await state.arrive(1, person(cid, key, key))
    await state.admit(1, 10, "u1")
    await state.admit(1, 11, "u3")
    await state.join_call(10, peer("u1", "s1"))
    await state.join_call(11, peer("u3", "s3"))
    await state.force_relay(10)
    await state.force_relay(11)

    await state.clear(1, 10)
    assert [p.key for p in await state.waiting(1)] == []  # u3 was admitted, u2 cleared
    assert await state.is_admitted(10, "u1") is False
    assert await state.call_peers(10) == []
    assert await state.relay_forced(10) is False
    assert await state.depart(1, 10, "u2") is False
    # The other consultation is untouched.
    assert await state.is_admitted(11, "u3") is True
    assert [p.key for p in await state.call_peers(11)] == ["u3"]
    assert await state.relay_forced(11) is True
    await state.clear(1, 12)  # nothing there: nothing happens


async def test_call_seats_join_change_and_leave(state):
    await state.join_call(10, peer("u1", "s1", role="clinician", name="Dr. Berg"))
    await state.join_call(10, peer("u2", "s2"))
    await state.join_call(11, peer("u5", "s5"))
    assert await state.call_peers(10) == [CallPeer("u1", "Dr. Berg", "clinician", "s1"), CallPeer("u2", "U2", "patient", "s2")]

    assert await state.update_call_peer(10, "u2", "s2", state="reconnecting") is True
    assert await state.update_call_peer(10, "u2", "s2", audio=False, video=True) is True
    assert await state.update_call_peer(10, "u2", "old", audio=True) is False  # not the seat's session
    assert await state.update_call_peer(10, "u9", "s9", audio=True) is False  # no such seat
    assert (await state.call_peers(10))[1] == CallPeer("u2", "U2", "patient", "s2", "reconnecting", False, True)

    assert await state.leave_call(10, "u2", "other") is False
    assert await state.leave_call(10, "u2", "s2") is True
    assert await state.leave_call(10, "u2", "s2") is False
    assert [p.key for p in await state.call_peers(10)] == ["u1"]
    assert [p.key for p in await state.call_peers(11)] == ["u5"]


async def test_a_second_tab_takes_the_seat_and_keeps_its_place(state):
    await state.join_call(10, peer("u1", "s1"))
    await state.join_call(10, peer("u2", "s2"))
    await state.update_call_peer(10, "u1", "s1", state="reconnecting", audio=False)
    await state.join_call(10, peer("u1", "s1b"))
    assert await state.call_peers(10) == [CallPeer("u1", "U1", "patient", "s1b"), CallPeer("u2", "U2", "patient", "s2")]
    # The replaced session can neither change nor give up the seat.
    assert await state.update_call_peer(10, "u1", "s1", state="reconnecting") is False
    assert await state.leave_call(10, "u1", "s1") is False
    assert await state.leave_call(10, "u1", "s1b") is True


async def test_the_relay_stays_forced_until_the_call_empties(state):
    assert await state.relay_forced(10) is False
    await state.join_call(10, peer("u1", "s1"))
    await state.join_call(10, peer("u2", "s2"))
    await state.force_relay(10)
    assert await state.relay_forced(10) is True and await state.relay_forced(11) is False
    await state.leave_call(10, "u1", "s1")
    assert await state.relay_forced(10) is True
    await state.leave_call(10, "u2", "s2")
    assert await state.relay_forced(10) is False
    assert await state.call_peers(10) == []


async def test_one_queue_per_subscriber_gets_its_channels_in_the_order_sent(state):
    async with state.subscribe("call:1", "call:1:u1", "consultation:1") as mine, state.subscribe("call:1") as theirs:
        sent = []
        for number in range(30):
            channel = ("call:1", "call:1:u1", "consultation:1", "call:1:u2")[number % 4]
            message = {"type": "note", "n": number, "text": "grüß dich", "flag": number % 2 == 0, "list": [number]}
            sent.append((channel, message))
            await state.publish(channel, message)
        mine_expected = [m for c, m in sent if c != "call:1:u2"]
        assert [await next_news(mine) for _ in mine_expected] == mine_expected
        assert [await next_news(theirs) for _ in range(8)] == [m for c, m in sent if c == "call:1"]
        await state.publish("consultation:1", {"type": "ended"})
        assert await next_news(mine) == {"type": "ended"}
        with pytest.raises(TimeoutError):
            await next_news(theirs, within=0.3)
    # Nobody listens any more: publishing still works and reaches nobody.
    await state.publish("call:1", {"type": "late"})
    async with state.subscribe("call:1") as again:
        await state.publish("call:1", {"type": "fresh"})
        assert await next_news(again) == {"type": "fresh"}


async def test_a_subscriber_that_leaves_does_not_take_the_channel_from_the_others(state):
    async with state.subscribe("practice:1") as staying:
        async with state.subscribe("practice:1") as leaving:
            await state.publish("practice:1", {"type": "waiting", "n": 1})
            assert await next_news(leaving) == {"type": "waiting", "n": 1}
        await state.publish("practice:1", {"type": "waiting", "n": 2})
        assert await next_news(staying) == {"type": "waiting", "n": 1}
        assert await next_news(staying) == {"type": "waiting", "n": 2}


async def test_the_state_is_ready(state):
    assert await state.ready() is True
