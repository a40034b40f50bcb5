"""Periodic jobs: one runner at a time holds a job, another takes over when it is gone."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from smartpractice.clock import FrozenClock
from smartpractice.jobs.runner import JobRunner
from smartpractice.keys import jobs_key
from smartpractice.storage.engine import create_engine
from smartpractice.storage.tables import calls
from tests import metadata_rows as rows
from tests.helpers import make_app, make_settings

MINUTE = timedelta(minutes=1)


@pytest.fixture
async def engines(database_url):
    """Two engines, as two server instances on one database would have."""
    made = [create_engine(database_url), create_engine(database_url)]
    yield made
    for engine in made:
        await engine.dispose()


def runner_with_job(engine, clock, ran: list[str], name: str = "tidy") -> JobRunner:
    runner = JobRunner(engine=engine, clock=clock)

    async def job(stopping: asyncio.Event) -> None:
        ran.append(runner.holder)

    runner.add(name, MINUTE, job)
    return runner


async def until(condition, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polls state another task owns
            await asyncio.sleep(0.02)


async def test_only_one_of_two_runners_runs_a_job_while_it_holds_the_lease(engines, clock):
    ran: list[str] = []
    first, second = (runner_with_job(engine, clock, ran) for engine in engines)
    await asyncio.gather(first.run_due(), second.run_due())
    assert len(ran) == 1
    holder = ran[0]
    for _ in range(3):
        clock.advance(minutes=1)
        await asyncio.gather(first.run_due(), second.run_due())
    # The holder renewed its lease at every run, so the job stayed with it.
    assert ran == [holder] * 4


async def test_another_runner_takes_over_once_the_lease_has_expired(engines, clock):
    ran: list[str] = []
    first, second = (runner_with_job(engine, clock, ran) for engine in engines)
    await first.run_due()
    clock.advance(minutes=1, seconds=59)
    await second.run_due()
    assert ran == [first.holder]  # the lease (twice the interval) still runs
    clock.advance(minutes=1)  # the second runner asks again one interval later
    await second.run_due()
    assert ran == [first.holder, second.holder]
    clock.advance(minutes=1)
    await first.run_due()
    assert ran == [first.holder, second.holder]


async def test_a_stopped_runner_hands_its_jobs_over_at_once(engines, clock):
    ran: list[str] = []
    first, second = (runner_with_job(engine, clock, ran) for engine in engines)
    task = asyncio.create_task(first.run())
    await until(lambda: first.runs["tidy"] == 1)
    first.stop()
    await task
    await second.run_due()
    assert ran == [first.holder, second.holder]


async def test_stop_lets_the_job_in_hand_finish(engines, clock):
    runner = JobRunner(engine=engines[0], clock=clock)
    steps: list[str] = []

    async def long_job(stopping: asyncio.Event) -> None:
        steps.append("started")
        await stopping.wait()
        await asyncio.sleep(0.05)  # a last batch still committing
        steps.append("finished")

    runner.add("long", MINUTE, long_job)
    task = asyncio.create_task(runner.run())
    await until(lambda: steps == ["started"])
    runner.stop()
    await task
    assert steps == ["started", "finished"]


async def test_a_failing_run_does_not_stop_the_job(engines, clock):
    runner = JobRunner(engine=engines[0], clock=clock)
    outcomes = iter([RuntimeError("database went away"), None])

    async def flaky(stopping: asyncio.Event) -> None:
        outcome = next(outcomes)
        if outcome:
            raise outcome

    runner.add("flaky", MINUTE, flaky)
    assert await runner.run_due() == []
    assert await runner.run_due() == []  # not due again before its interval
    clock.advance(minutes=1)
    assert await runner.run_due() == ["flaky"]


def test_a_job_name_is_registered_once(clock):
    runner = JobRunner(engine=None, clock=clock)
    runner.add("purge", MINUTE, lambda stopping: asyncio.sleep(0))
    with pytest.raises(ValueError, match="already registered"):
        runner.add("purge", MINUTE, lambda stopping: asyncio.sleep(0))


async def call_count(engine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(calls))).scalar_one()


async def test_the_server_purges_at_start_and_then_every_interval(aiohttp_client, tmp_path, database_url):
    clock = FrozenClock()
    cutoff = clock.now() - timedelta(days=90)
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        practice = await rows.practice(conn, clock.now())
        consultation = await rows.consultation(conn, practice, starts_at=clock.now(), state="scheduled")
        await rows.call(conn, consultation, started_at=cutoff - MINUTE)
        await rows.call(conn, consultation, started_at=cutoff + timedelta(minutes=30))
    settings = make_settings(tmp_path, database_url, PURGE_INTERVAL_MINUTES="60")
    client = await aiohttp_client(make_app(settings, clock=clock))
    runner = client.app[jobs_key]
    await until(lambda: runner.runs["purge"] == 1)
    assert await call_count(engine) == 1

    clock.advance(minutes=59)
    await asyncio.sleep(1.5)  # more than a tick of the runner: not due yet
    assert runner.runs["purge"] == 1 and await call_count(engine) == 1
    clock.advance(minutes=1)
    await until(lambda: runner.runs["purge"] == 2)
    assert await call_count(engine) == 0
    await engine.dispose()
