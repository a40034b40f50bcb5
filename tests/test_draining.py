"""SIGTERM to a real `smartpractice serve` process: it stops listening, says so on /readyz,
closes the waiting room's and the call's sockets with 1012 so that the pages reconnect
elsewhere, answers the request it is reading, finishes or hands back the mail it is sending
to a slow SMTP server, and exits in time without a traceback."""

from __future__ import annotations

import asyncio
import signal
import time
from asyncio.subprocess import Process
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from smartpractice.draining import CLOSE_RESTARTING
from smartpractice.mail.sender import STALE_CLAIM, STALE_LOOK_SECONDS
from smartpractice.scheduling.consultations import Appointment
from smartpractice.storage import mails as outbox
from smartpractice.storage.engine import create_engine
from smartpractice.storage.tables import mails
from tests.helpers import (
    JOIN,
    MailCatcher,
    add_member,
    browser_at,
    close_code,
    csrf_token,
    log_in,
    next_of,
    participants,
)
from tests.redis_rooms import REDIS_URL, drop_prefix, new_prefix
from tests.serve_processes import until_ready

STOP_SECONDS = 4


@pytest.fixture
async def server(start_server):
    process, base, log_path = await start_server("server", STOP_SECONDS=str(STOP_SECONDS))
    await until_ready(process, base, log_path, within=60)
    return process, base, log_path


@pytest.fixture
async def booked(app, services, clock, practice, clinician):
    erika = await add_member(app, practice, "patient", "erika")
    plan = Appointment.parse("Kontrolle", clock.now() + timedelta(minutes=5), 20, now=clock.now())
    scheduled = await services.consultations.schedule(practice, clinician.user_id, plan, patient_ids=[erika])
    return scheduled.consultation, f"u{erika}"


async def test_sigterm_drains_sockets_and_requests_then_exits(server, app, clock, practice, booked):
    process, base, log_path = server
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


# Docker's kill comes 10 s after its SIGTERM; the mail tests run with the default stop budget.
KILL_AFTER = 10
RECIPIENT = "erika@example.org"


class OneMail:
    """A mail put in the outbox as a reset request would, once the server runs (its sender
    finds it at its next look, within 5 s), and its row read back."""

    def __init__(self, database_url: str) -> None:
        self._engine = create_engine(database_url)
        self.id = 0

    async def put(self) -> None:
        async with self._engine.begin() as conn:
            self.id = await outbox.insert_mail(
                conn, kind="password_reset", recipient=RECIPIENT, subject="Passwort", text_body="Ihr Link",
                html_body="<p>Ihr Link</p>", message_id="<stop-test@example.org>", now=datetime.now(UTC))

    async def row(self):
        async with self._engine.connect() as conn:
            return (await conn.execute(mails.select().where(mails.c.id == self.id))).one()

    async def claimed_earlier(self, by: timedelta) -> None:
        """As if the claim on it were older by `by`: time passing for the row alone."""
        claimed_at = (await self.row()).claimed_at
        async with self._engine.begin() as conn:
            await conn.execute(mails.update().where(mails.c.id == self.id).values(claimed_at=claimed_at - by))

    async def close(self) -> None:
        await self._engine.dispose()


@pytest.fixture
async def one_mail(database_url):
    mail = OneMail(database_url)
    yield mail
    await mail.close()


async def serving_mail(start_server, name: str, smtp: MailCatcher, **settings: str) -> tuple[Process, Path]:
    """A server whose mails go to `smtp`, ready; with the default stop budget."""
    process, base, log_path = await start_server(
        name, SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp.controller.port), SMTP_TLS="none", **settings)
    await until_ready(process, base, log_path, within=60)
    return process, log_path


async def until(condition, within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - aiosmtpd counts from its own thread
            await asyncio.sleep(0.05)


async def stop_in_time(process: Process, log_path: Path) -> str:
    """SIGTERM, then the exit within Docker's grace; the log, checked for tracebacks."""
    asked = time.monotonic()
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.wait(), KILL_AFTER + 5)
    took = time.monotonic() - asked
    log = await asyncio.to_thread(log_path.read_text)
    assert process.returncode == 0, log
    assert took < KILL_AFTER, (took, log)
    assert "Traceback" not in log and " 500 " not in log and "ERROR" not in log, log
    return log


async def test_sigterm_hands_back_a_mail_the_smtp_server_has_not_taken(start_server, smtp, one_mail):
    # The server sits on the data far longer than the stop allows, and takes the mail only
    # when it answers (a client that hangs up before cancels it, as a real MTA would).
    smtp.data_pause = 60
    process, log_path = await serving_mail(start_server, "first", smtp)
    await one_mail.put()
    await until(lambda: smtp.data_received == 1)
    log = await stop_in_time(process, log_path)
    assert "handed back" in log
    row = await one_mail.row()
    # Back in the queue, due at once, the cut try not counted against the mail's 30.
    assert (row.status, row.attempts, row.claimed_at) == ("pending", 0, None)
    assert row.text_body == "Ihr Link"
    await until(lambda: smtp.data_abandoned == 1, within=5)  # the server saw the client hang up
    assert smtp.messages == []

    # The next start, with the server quick again, delivers it once.
    smtp.data_pause = 0
    process, log_path = await serving_mail(start_server, "second", smtp)
    await smtp.wait_for(1, within=20)
    await until(lambda: smtp.data_received >= 2)
    await stop_in_time(process, log_path)
    assert (await one_mail.row()).status == "sent"
    assert smtp.data_received == 2
    [message] = smtp.to(RECIPIENT)
    assert message["Message-ID"] == "<stop-test@example.org>"
    assert len(smtp.messages) == 1


async def test_sigterm_waits_for_a_slow_smtp_server_that_answers_in_time(start_server, smtp, one_mail):
    smtp.data_pause = 3  # well inside the default budget of 8 s
    process, log_path = await serving_mail(start_server, "server", smtp)
    await one_mail.put()
    await until(lambda: smtp.data_received == 1)
    log = await stop_in_time(process, log_path)
    assert "handed back" not in log
    assert (await one_mail.row()).status == "sent"
    assert len(smtp.to(RECIPIENT)) == 1


async def test_sigterm_records_a_taken_mail_though_the_server_never_says_goodbye(start_server, smtp, one_mail):
    # The server takes the mail at once, then never answers QUIT: the mail is delivered, so
    # its row must say `sent`, not stay `sending` (nor be sent again at the next start).
    smtp.quit_pause = 60
    process, log_path = await serving_mail(start_server, "server", smtp)
    await one_mail.put()
    await smtp.wait_for(1, within=20)
    await stop_in_time(process, log_path)
    assert (await one_mail.row()).status == "sent"
    assert len(smtp.to(RECIPIENT)) == 1


async def test_a_mail_left_sending_by_a_killed_instance_is_marked_uncertain_by_the_one_running_on(
        start_server, smtp, one_mail):
    """Two instances on one database (sharing Redis, as docs/deployment.md runs them). A is
    killed (SIGKILL) in the middle of a mail and never starts again; B, started before and
    running on, marks that mail `uncertain` once its claim is STALE_CLAIM old, at most once
    as after any crash: not sent again, and B's log says so."""
    smtp.data_pause = 60  # A is still in the SMTP conversation when it is killed
    prefix = new_prefix()
    shared = {"REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix}
    try:
        a, _ = await serving_mail(start_server, "a", smtp, **shared)
        await one_mail.put()
        await until(lambda: smtp.data_received == 1)
        # B starts after A claimed the mail: its look at start finds a fresh claim, not a stale one.
        b, b_log = await serving_mail(start_server, "b", smtp, **shared)
        a.kill()
        await a.wait()
        await until(lambda: smtp.data_abandoned == 1, within=5)
        assert (await one_mail.row()).status == "sending"

        await one_mail.claimed_earlier(by=STALE_CLAIM + timedelta(minutes=1))
        async with asyncio.timeout(STALE_LOOK_SECONDS + 10):
            while (row := await one_mail.row()).status == "sending":  # noqa: ASYNC110 - B's sender writes it
                await asyncio.sleep(0.1)
        assert (row.status, row.text_body, row.html_body) == ("uncertain", "", "")
        log = await stop_in_time(b, b_log)
        assert "1 mail(s) were cut off mid-send and are marked uncertain, not resent" in log, log
        assert smtp.messages == [] and smtp.data_received == 1
    finally:
        await drop_prefix(prefix)
