"""SIGTERM to a real `smartpractice serve` process: it stops listening, says so on /readyz,
closes the waiting room's and the call's sockets with 1012 so that the pages reconnect
elsewhere, answers the request it is reading, and exits in time without a traceback."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp.test_utils import unused_port

from smartpractice.draining import CLOSE_RESTARTING
from smartpractice.scheduling.consultations import Appointment
from tests.helpers import (
    JOIN,
    add_member,
    browser_at,
    close_code,
    csrf_token,
    log_in,
    next_of,
    participants,
)

STOP_SECONDS = 4


@pytest.fixture
async def server(tmp_path, database_url, cli_env):
    """`python -m smartpractice serve` on a free port, its log in a file; killed if the test
    leaves it running."""
    port = unused_port()
    log_path = tmp_path / "server.log"
    env = {**os.environ, **cli_env, "SMARTPRACTICE_BASE_URL": f"http://127.0.0.1:{port}",
           "SMARTPRACTICE_STOP_SECONDS": str(STOP_SECONDS), "SMARTPRACTICE_PURGE_INTERVAL_MINUTES": "0",
           "SMARTPRACTICE_HOUSEKEEPING_SECONDS": "0"}
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smartpractice", "serve", "--host", "127.0.0.1", "--port", str(port),
            env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as probe:
            async with asyncio.timeout(60):
                while True:
                    try:
                        if (await probe.get(base + "/readyz")).status == 200:
                            break
                    except aiohttp.ClientConnectionError:
                        pass
                    assert process.returncode is None, log_path.read_text()
                    await asyncio.sleep(0.2)
        yield process, base, port, log_path
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
async def booked(app, services, clock, practice, clinician):
    erika = await add_member(app, practice, "patient", "erika")
    plan = Appointment.parse("Kontrolle", clock.now() + timedelta(minutes=5), 20, now=clock.now())
    scheduled = await services.consultations.schedule(practice, clinician.user_id, plan, patient_ids=[erika])
    return scheduled.consultation, f"u{erika}"


async def test_sigterm_drains_sockets_and_requests_then_exits(server, app, clock, practice, booked):
    process, base, port, log_path = server
    # log_in gives the earliest TOTP step the test's clock allows; the server's clock is the
    # real one, which has moved on since the fixtures froze theirs.
    clock.current = datetime.now(UTC) + timedelta(seconds=30)
    consultation, erika_key = booked
    origin = {"Origin": base}
    async with browser_at(base + "/", app) as doctor, browser_at(base + "/", app) as patient:
        assert (await log_in(doctor, "dr-berg")).status == 303
        assert (await log_in(patient, "erika")).status == 303
        staff = await doctor.ws_connect(f"/p/{practice.slug}/waiting-room/ws", headers=origin)
        await staff.send_json(JOIN)
        waiting = await patient.ws_connect(f"/c/{consultation.id}/ws", headers=origin)
        await waiting.send_json(JOIN)
        await next_of(waiting, "waiting")
        await staff.send_json({"type": "admit", "consultation": consultation.id, "participant": erika_key})
        await next_of(waiting, "admitted")
        calls = []
        for browser in (doctor, patient):
            socket = await browser.ws_connect(f"/c/{consultation.id}/call/ws", headers=origin)
            await socket.send_json(JOIN)
            await next_of(socket, "welcome")
            calls.append(socket)
        await participants(calls[0], 2)

        # A request in hand when the stop begins: an unknown user's login takes a full
        # password hash (about half a second) before the answer.
        token = await csrf_token(patient)
        in_hand = asyncio.create_task(patient.post("/login", allow_redirects=False, data={
            "identifier": "nobody-here", "password": "wrong-password-123", "csrf_token": token}))
        await asyncio.sleep(0.1)

        asked = time.monotonic()
        process.send_signal(signal.SIGTERM)
        # Every open socket, each person's each kind, is told to reconnect elsewhere.
        for socket in (staff, *calls):
            assert await close_code(socket, within=STOP_SECONDS) == CLOSE_RESTARTING
        # No new connection is taken any more.
        with pytest.raises(aiohttp.ClientConnectionError):
            await doctor.get("/readyz")
        # The request in hand is answered.
        assert (await asyncio.wait_for(in_hand, STOP_SECONDS)).status == 401
        await asyncio.wait_for(process.wait(), STOP_SECONDS + 5)
        took = time.monotonic() - asked
    assert process.returncode == 0
    assert took < STOP_SECONDS + 3, took
    log = log_path.read_text()
    assert "Traceback" not in log and " 500 " not in log and "ERROR" not in log, log
