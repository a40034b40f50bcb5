"""/metrics: behind its token, parsed by prometheus-client's own parser, and its figures
follow what people do (requests, logins, a call's sockets, a relayed call's streams,
packets, bytes and drops, the mail queue and its failures, job runs)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from smartpractice.app import create_app
from smartpractice.keys import engine_key, jobs_key, services_key
from smartpractice.scheduling.consultations import Appointment
from smartpractice.storage.tables import practices
from tests.helpers import (
    JOIN,
    ORIGIN,
    PASSWORD,
    add_member,
    log_in,
    mail_settled,
    make_app,
    make_settings,
    next_of,
    participants,
)
from tests.rtc_peers import Peer, SmallCamera, relay_offer, until

TOKEN = "metrics-token-" + "m" * 32
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(aiohttp_client, tmp_path, database_url, clock, passwords, request):
    # The purge runs as soon as the server starts, so that a job run is there to count.
    mail = {}
    if "smtp" in request.fixturenames:
        port = request.getfixturevalue("smtp").controller.port
        mail = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_TLS": "none"}
    settings = make_settings(tmp_path, database_url, METRICS_TOKEN=TOKEN, PURGE_INTERVAL_MINUTES="60", **mail)
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
                 "smartpractice_relay_keyframe_requests", "smartpractice_relay_bytes_received",
                 "smartpractice_relay_bytes_sent", "smartpractice_relay_packets_dropped",
                 "smartpractice_mails"):
        assert name in names, name
    assert value(samples, "smartpractice_open_sockets", kind="call") == 0
    for reason in ("malformed", "not_connected", "codec", "keyframe_wait"):
        assert value(samples, "smartpractice_relay_packets_dropped", reason=reason) == 0
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
    # The server counts a socket out once its handler saw the close, which may come after
    # the client's close returned.
    async with asyncio.timeout(10):
        while value(await scrape(client), "smartpractice_open_sockets", kind="call") != 0:  # noqa: ASYNC110 - polls the server
            await asyncio.sleep(0.05)


async def test_job_runs_are_counted(client, app):
    runner = app[jobs_key]
    await until(lambda: runner.runs["purge"] >= 1)
    samples = await scrape(client)
    assert value(samples, "smartpractice_job_runs_total", job="purge") == runner.runs["purge"] >= 1


async def test_a_relayed_call_shows_in_streams_packets_bytes_and_drops(client, other_browser, app, services, clock, practice, clinician):
    """The practice sends every call through the relay: Dr. Berg publishes a camera
    (a real aiortc peer), Erika receives it, and the relay's figures follow."""
    async with app[engine_key].begin() as conn:
        await conn.execute(update(practices).where(practices.c.id == practice.id).values(relay_policy="relay"))
    erika = await add_member(app, practice, "patient", "erika")
    plan = Appointment.parse("Kontrolle", clock.now() + timedelta(minutes=10), 20, now=clock.now())
    booked = (await services.consultations.schedule(practice, clinician.user_id, plan, patient_ids=[erika])).consultation
    await log_in(client, "dr-berg")
    await log_in(other_browser, "erika")
    await services.waiting_room.state.admit(practice.id, booked.id, f"u{erika}")
    sockets, peers = [], []
    try:
        for browser in (client, other_browser):
            socket = await browser.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN)
            await socket.send_json({"type": "join", "version": 1})
            await next_of(socket, "welcome")
            sockets.append(socket)
        doctor, patient = sockets
        listing = await participants(doctor, 2)
        assert listing["topology"] == "relay"
        berg = next(p["id"] for p in listing["participants"] if p["role"] == "clinician")
        camera = Peer()
        camera.pc.addTransceiver(SmallCamera(), direction="sendonly")
        peers.append(camera)
        await relay_offer(doctor, camera, "publish", [])
        publishing = await scrape(client)
        assert value(publishing, "smartpractice_relay_rooms") == 1
        assert value(publishing, "smartpractice_relay_streams", kind="video") == 1
        assert value(publishing, "smartpractice_calls", topology="relay") == 1
        await until_scraped(client, lambda samples: value(samples, "smartpractice_relay_packets_received") > 0)
        # The camera is sending now: its packets reach Erika's subscription from the relay's
        # answer on, and are not sent until her connection is up.
        screen = Peer()
        screen.pc.addTransceiver("video", direction="recvonly")
        peers.append(screen)
        await relay_offer(patient, screen, "receive", [berg])
        await until(lambda: screen.frames["video"] >= 10, within=20)
        during = await scrape(client)
        received = value(during, "smartpractice_relay_packets_received")
        assert received > value(publishing, "smartpractice_relay_packets_received")
        assert value(during, "smartpractice_relay_bytes_received") > value(publishing, "smartpractice_relay_bytes_received")
        # Every forwarded packet carries a VP8 payload of some bytes; nothing is sent twice here.
        assert value(during, "smartpractice_relay_bytes_sent") > 0
        # Packets that reach the subscription before its connection is up are counted, not
        # sent; whether any do depends on how fast ICE completes, so only the series is checked.
        assert ("smartpractice_relay_packets_dropped", (("reason", "not_connected"),)) in during
        assert value(during, "smartpractice_relay_packets_dropped", reason="codec") == 0
        assert value(during, "smartpractice_relay_packets_dropped", reason="malformed") == 0
    finally:
        for peer in peers:
            await peer.close()
        for socket in sockets:
            await socket.send_json({"type": "leave"})  # else the seat is kept for a reconnect
            await socket.close()
    await until_scraped(client, lambda samples: value(samples, "smartpractice_relay_rooms") == 0)
    after = await scrape(client)
    assert value(after, "smartpractice_relay_streams", kind="video") == 0
    assert value(after, "smartpractice_relay_packets_dropped", reason="not_connected") == 0


async def test_a_mail_refused_for_good_shows_as_failed(client, app, smtp):
    before = await scrape(client)
    smtp.refusal, smtp.refuse = "550 5.1.1 no such mailbox", True
    async with app[engine_key].begin() as conn:
        await app[services_key].outbox.enqueue(conn, kind="password_reset", to="erika@example.org", language="de",
                                               context={"name": "Erika Muster", "link": "http://localhost:8080/x"})
    await mail_settled(app)
    after = await scrape(client)
    assert value(after, "smartpractice_mails", status="failed") == value(before, "smartpractice_mails", status="failed") + 1
    assert value(after, "smartpractice_mails", status="pending") == 0



async def until_scraped(client, condition, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not condition(await scrape(client)):  # noqa: ASYNC110 - the server changes them
            await asyncio.sleep(0.1)
