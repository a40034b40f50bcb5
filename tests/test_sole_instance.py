"""Without Redis, one server at a time for the waiting rooms and calls of a database: a
second `smartpractice serve` refuses to start and points to SMARTPRACTICE_REDIS_URL; it
starts once the first stopped, or crashed and its lease ran out. With Redis, no lease."""

from __future__ import annotations

import asyncio
import signal

import pytest

from smartpractice.rooms.memory_lease import NAME, MemoryRoomsLease, RoomsHeldElsewhere
from smartpractice.storage import instance_leases
from tests.redis_rooms import drop_prefix, new_prefix
from tests.serve_processes import until_ready

# Short, so that the in-process tests see renewals and expiry within a second or two.
QUICK = {"lease_seconds": 2.0, "renew_seconds": 0.2}


async def test_a_second_holder_is_refused_while_the_first_renews(engine, clock):
    first = MemoryRoomsLease(engine=engine, clock=clock, **QUICK)
    second = MemoryRoomsLease(engine=engine, clock=clock, **QUICK)
    await first.take()
    async with asyncio.timeout(5):
        with pytest.raises(RoomsHeldElsewhere) as refused:
            await second.take()
    message = str(refused.value)
    assert first.description in message and "SMARTPRACTICE_REDIS_URL" in message
    # A clean stop gives the lease up: the next one takes it at once. The frozen clock never
    # lets the lease run out, so a bound that a loaded machine's database keeps proves it too.
    await first.release()
    async with asyncio.timeout(10):
        await second.take()
    await second.release()


async def test_a_lease_nobody_renews_is_taken_once_it_ran_out(engine, clock):
    crashed = MemoryRoomsLease(engine=engine, clock=clock, **QUICK)
    await crashed.take()
    crashed._renewing.cancel()  # the process died: nobody renews, nobody releases
    successor = MemoryRoomsLease(engine=engine, clock=clock, **QUICK)
    taking = asyncio.create_task(successor.take())
    await asyncio.sleep(1)
    assert not taking.done()  # not expired yet by the (frozen) clock
    clock.advance(seconds=2)
    async with asyncio.timeout(5):
        await taking
    async with engine.connect() as conn:
        assert (await instance_leases.current(conn, NAME)).holder == successor.holder
    await successor.release()


async def test_a_second_serve_on_the_same_database_is_refused_until_the_first_is_gone(start_server):
    first, first_base, first_log = await start_server("first")
    await until_ready(first, first_base, first_log)

    second, _, second_log = await start_server("second")
    async with asyncio.timeout(30):
        assert await second.wait() == 1
    refusal = second_log.read_text()
    assert f"process {first.pid}" in refusal and "SMARTPRACTICE_REDIS_URL" in refusal
    assert refusal.count("Error: Another smartpractice instance") == 1 and "Traceback" not in refusal

    # A clean stop gives the lease up: the next one starts at once.
    first.send_signal(signal.SIGTERM)
    assert await first.wait() == 0
    third, third_base, third_log = await start_server("third")
    await until_ready(third, third_base, third_log, within=10)

    # A crash leaves the lease behind; the next start waits until it runs out (15 s).
    third.kill()
    await third.wait()
    fourth, fourth_base, fourth_log = await start_server("fourth")
    await until_ready(fourth, fourth_base, fourth_log, within=40)
    assert "waiting up to 15 s" in fourth_log.read_text()
    fourth.send_signal(signal.SIGTERM)
    assert await fourth.wait() == 0


async def test_instances_that_share_redis_need_no_lease(start_server, engine):
    prefix = new_prefix()
    try:
        servers = [await start_server(name, REDIS_URL="redis://127.0.0.1:6379/0", REDIS_PREFIX=prefix)
                   for name in ("a", "b")]
        for process, base, log_path in servers:
            await until_ready(process, base, log_path)
        async with engine.connect() as conn:
            assert await instance_leases.current(conn, NAME) is None
        for process, _, _ in servers:
            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 0
    finally:
        await drop_prefix(prefix)
