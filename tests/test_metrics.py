"""/metrics: behind its token, parsed by prometheus-client's own parser, and its figures
follow what people do (requests, logins, a call's sockets, the mail queue, job runs)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from smartpractice.app import create_app
from smartpractice.keys import jobs_key
from smartpractice.scheduling.consultations import Appointment
from tests.helpers import (
    JOIN,
    ORIGIN,
    PASSWORD,
    add_member,
    log_in,
    make_app,
    make_settings,
    next_of,
)
from tests.rtc_peers import until

TOKEN = "metrics-token-" + "m" * 32
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(aiohttp_client, tmp_path, database_url, clock, passwords):
    # The purge runs as soon as the server starts, so that a job run is there to count.
    settings = make_settings(tmp_path, database_url, METRICS_TOKEN=TOKEN, PURGE_INTERVAL_MINUTES="60")
    return await aiohttp_client(create_app(settings, clock=clock, passwords=passwords))


async def scrape(client) -> dict[tuple[str, tuple], float]:
    response = await client.get("/metrics", headers=BEARER)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def mails_in(samples) -> float:
    return sum(count for (name, _), count in samples.items() if name == "smartpractice_mails")


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_need_the_token(client):
    assert (await client.get("/metrics")).status == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 46})
    assert wrong.status == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert "smartpractice_http_requests_total" not in await wrong.text()


async def test_without_a_token_there_are_no_metrics(aiohttp_client, settings, clock, passwords):
    client = await aiohttp_client(make_app(settings, clock=clock))
    response = await client.get("/metrics", headers={"Authorization": "Bearer "})
    assert response.status == 404


async def test_every_metric_is_there_from_the_start(client):
    samples = await scrape(client)
    names = {name for name, _ in samples}
    for name in ("smartpractice_open_sockets", "smartpractice_calls", "smartpractice_relay_rooms",
                 "smartpractice_relay_streams", "smartpractice_relay_packets_received",
                 "smartpractice_relay_repairs_received", "smartpractice_relay_packets_resent",
                 "smartpractice_relay_keyframe_requests", "smartpractice_mails"):
        assert name in names, name
    assert value(samples, "smartpractice_open_sockets", kind="call") == 0
    assert value(samples, "smartpractice_mails", status="pending") == 0


async def test_requests_and_logins_are_counted_by_route_without_personal_data(client, app, practice):
    await add_member(app, practice, "patient", "erika")
    before = await scrape(client)
    assert (await log_in(client, "erika")).status == 303
    assert (await log_in(client, "erika", "wrong-" + PASSWORD)).status == 401
    await client.get("/confirm/some-secret-token")
    after = await scrape(client)
    assert value(after, "smartpractice_logins_total", kind="password", outcome="ok") == 1
    assert value(after, "smartpractice_logins_total", kind="password", outcome="refused") == 1
    submitted = value(after, "smartpractice_http_requests_total", route="login_submit", method="POST", status="303")
    assert submitted - value(before, "smartpractice_http_requests_total", route="login_submit", method="POST", status="303") == 1
    assert value(after, "smartpractice_http_request_duration_seconds_count", route="login_submit") >= 2
    text = await (await client.get("/metrics", headers=BEARER)).text()
    for personal in ("erika", "some-secret-token", "/confirm", "Praxis", "127.0.0.1"):
        assert personal not in text


async def test_a_call_shows_in_sockets_calls_and_the_mail_queue(client, other_browser, app, services, clock, practice, clinician):
    erika = await add_member(app, practice, "patient", "erika")
    before = await scrape(client)
    plan = Appointment.parse("Kontrolle", clock.now() + timedelta(minutes=10), 20, now=clock.now())
    booked = (await services.consultations.schedule(practice, clinician.user_id, plan, patient_ids=[erika])).consultation
    scheduled = await scrape(client)
    # The schedule's mails are in the outbox, whether sent already or not.
    assert mails_in(scheduled) > mails_in(before)
    await log_in(client, "dr-berg")
    await log_in(other_browser, "erika")
    waiting = await other_browser.ws_connect(f"/c/{booked.id}/ws", headers=ORIGIN)
    await waiting.send_json(JOIN)
    await next_of(waiting, "waiting")
    during_wait = await scrape(client)
    assert value(during_wait, "smartpractice_open_sockets", kind="waiting_patient") == 1
    await waiting.close()
    await services.waiting_room.state.admit(practice.id, booked.id, f"u{erika}")
    sockets = []
    for browser in (client, other_browser):
        socket = await browser.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN)
        await socket.send_json({"type": "join", "version": 1})
        await next_of(socket, "welcome")
        sockets.append(socket)
    await next_of(sockets[0], "participants")
    during = await scrape(client)
    assert value(during, "smartpractice_open_sockets", kind="call") == 2
    assert value(during, "smartpractice_open_sockets", kind="waiting_patient") == 0
    assert value(during, "smartpractice_calls", topology="p2p") == 1
    for socket in sockets:
        await socket.close()
    after = await scrape(client)
    assert value(after, "smartpractice_open_sockets", kind="call") == 0


async def test_job_runs_are_counted(client, app):
    runner = app[jobs_key]
    await until(lambda: runner.runs["purge"] >= 1)
    samples = await scrape(client)
    assert value(samples, "smartpractice_job_runs_total", job="purge") == runner.runs["purge"] >= 1
