"""A Redis that does not answer: the instance starts anyway, says so in its log, on
/healthz and on /readyz, refuses new waiting and call sockets with a translated error (close 1013)
instead of a 500, and keeps the calls that run; once Redis answers, all works again."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port

from smartpractice.keys import services_key
from smartpractice.rooms.protocol import CLOSE_TRY_AGAIN
from smartpractice.scheduling.consultations import Appointment
from tests.helpers import (
    JOIN,
    ORIGIN,
    PASSWORD,
    add_member,
    close_code,
    log_in,
    make_app,
    make_settings,
    next_of,
    participants,
)
from tests.p2p_peers import Participant, until_connected, until_frames_flow
from tests.redis_rooms import RedisProxy, closed_port_url, drop_prefix, new_prefix

EN = {"Accept-Language": "en"}
GERMAN = "Wartezimmer und Gespräche sind gerade nicht erreichbar. Bitte versuchen Sie es in einer Minute noch einmal."
ENGLISH = "Waiting rooms and calls are unavailable at the moment. Please try again in a minute."


@pytest.fixture
async def booked(app, services, clock, practice, clinician):
    erika = await add_member(app, practice, "patient", "erika")
    plan = Appointment.parse("Kontrolle", clock.now() + timedelta(minutes=10), 20, now=clock.now())
    return (await services.consultations.schedule(practice, clinician.user_id, plan, patient_ids=[erika])).consultation


async def refused(socket) -> dict:
    """The one message a refused socket gets before it is closed with 1013."""
    error = await next_of(socket, "error")
    assert await close_code(socket) == CLOSE_TRY_AGAIN
    return error


async def test_without_redis_the_instance_serves_pages_and_refuses_rooms(aiohttp_client, tmp_path, database_url,
                                                                          clock, practice, booked, caplog):
    caplog.set_level(logging.INFO, "smartpractice.rooms.redis_state")
    settings = make_settings(tmp_path, database_url, REDIS_URL=closed_port_url(), REDIS_PREFIX=new_prefix())
    down = await aiohttp_client(make_app(settings, clock=clock))
    assert "unreachable" in caplog.text and "refuse new connections" in caplog.text

    health = await down.get("/healthz")
    assert health.status == 503
    assert await health.json() == {"status": "unavailable", "database": "ok", "rooms": "unreachable"}
    # The load balancer's readiness check sends new work elsewhere, and says why.
    ready = await down.get("/readyz")
    assert ready.status == 503
    assert await ready.json() == {"status": "not_ready", "database": "ok", "rooms": "unreachable", "mail": "ok",
                                  "stopping": False}

    # Logging in and the rest of the site work; the rooms say why they do not.
    await log_in(down, "erika")
    page = await down.get(f"/c/{booked.id}")
    assert page.status == 503 and GERMAN in await page.text()
    async with down.ws_connect(f"/c/{booked.id}/ws", headers=ORIGIN) as waiting:
        error = await refused(waiting)
        assert error["code"] == "rooms_unavailable" and error["message"] == GERMAN
    async with down.ws_connect(f"/c/{booked.id}/call/ws", headers={**ORIGIN, **EN}) as call:
        assert (await refused(call))["message"] == ENGLISH

    down.session.cookie_jar.clear()
    await log_in(down, "dr-berg")
    # The clinician's call page needs no room state; its socket is what is refused.
    assert (await down.get(f"/c/{booked.id}/call", headers=EN)).status == 200
    async with down.ws_connect(f"/p/{practice.slug}/waiting-room/ws", headers=ORIGIN) as staff:
        assert (await refused(staff))["code"] == "rooms_unavailable"
    async with down.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN) as call:
        assert (await refused(call))["code"] == "rooms_unavailable"
    assert "Traceback" not in caplog.text and "unhandled error" not in caplog.text


@pytest.fixture
async def behind_proxy(aiohttp_client, tmp_path, database_url, clock):
    """An instance whose Redis connection goes through a proxy the test can cut."""
    proxy = RedisProxy()
    await proxy.start()
    prefix = new_prefix()
    settings = make_settings(tmp_path, database_url, REDIS_URL=proxy.url, REDIS_PREFIX=prefix)
    app = await aiohttp_client(make_app(settings, clock=clock))
    yield app, proxy
    await proxy.start()  # let it say goodbye to Redis
    await app.close()
    await proxy.cut()
    await drop_prefix(prefix)


async def test_a_running_call_goes_on_while_redis_is_away(aiohttp_client, behind_proxy, practice, booked, caplog):
    app, proxy = behind_proxy
    patient_browser = await aiohttp_client(app.server)
    await log_in(app, "dr-berg")
    await log_in(patient_browser, "erika")
    patient_page = await patient_browser.ws_connect(f"/c/{booked.id}/ws", headers=ORIGIN)
    await patient_page.send_json(JOIN)
    await next_of(patient_page, "waiting")
    [person] = await app.app[services_key].waiting_room.waiting(practice.id)
    await app.app[services_key].waiting_room.admit(practice.id, booked.id, person.key)
    await next_of(patient_page, "admitted")
    doctor = await app.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN)
    await doctor.send_json(JOIN)
    await next_of(doctor, "welcome")
    patient = await patient_browser.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN)
    await patient.send_json(JOIN)
    await next_of(patient, "welcome")
    await participants(doctor, 2)

    # From here on both pages read all the time, as browsers do: a socket nobody reads
    # answers no heartbeat, and the server rightly counts it as dropped.
    heard: dict[str, list[dict]] = {"doctor": [], "patient": []}

    async def read(name: str, socket) -> None:
        async for message in socket:
            if message.type == aiohttp.WSMsgType.TEXT:
                heard[name].append(message.json())

    readers = [asyncio.create_task(read("doctor", doctor)), asyncio.create_task(read("patient", patient))]

    async def until_heard(name: str, kind: str, within: float) -> dict:
        async with asyncio.timeout(within):
            while not any(m["type"] == kind for m in heard[name]):  # noqa: ASYNC110 - filled by the reader
                await asyncio.sleep(0.05)
        return next(m for m in heard[name] if m["type"] == kind)

    await proxy.cut()
    assert (await app.get("/healthz")).status == 503
    ready = await app.get("/readyz")
    assert ready.status == 503 and (await ready.json())["rooms"] == "unreachable"
    # Their media goes peer to peer; their signalling sockets stay open and answer.
    await doctor.send_json({"type": "chat", "text": "Hören Sie mich?"})
    assert (await until_heard("doctor", "error", 5))["code"] == "rooms_unavailable"
    # Nobody new gets in meanwhile, with a reason.
    async with patient_browser.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN) as third:
        assert (await refused(third))["code"] == "rooms_unavailable"
    assert not doctor.closed and not patient.closed

    await proxy.start()
    async with asyncio.timeout(15):
        while (await app.get("/healthz")).status != 200:  # noqa: ASYNC110 - polls the server
            await asyncio.sleep(0.2)
    assert (await app.get("/readyz")).status == 200
    # Once the pub/sub connection is back, the call's news flows again.
    async with asyncio.timeout(15):
        while not any(m["type"] == "chat" for m in heard["patient"]):
            await doctor.send_json({"type": "chat", "text": "Jetzt?"})
            await asyncio.sleep(0.5)
    assert next(m for m in heard["patient"] if m["type"] == "chat")["text"] == "Jetzt?"
    assert not doctor.closed and not patient.closed
    for reader in readers:
        reader.cancel()
    assert "unreachable" in caplog.text and "answers" in caplog.text
    assert "Traceback" not in caplog.text
    for socket in (doctor, patient, patient_page):
        await socket.close()


async def test_a_peer_to_peer_call_keeps_its_media_and_sockets_while_redis_is_away(tmp_path, database_url, app,
                                                                                  services, clock, practice):
    """Two aiortc participants that connect as the call page does (tests/p2p_peers.py, each
    its own process), in a peer-to-peer call through an instance whose Redis goes away for
    a while: each keeps decoding the other's video and audio, and neither socket is cut."""
    proxy = RedisProxy()
    await proxy.start()
    prefix, port = new_prefix(), unused_port()
    base = f"http://127.0.0.1:{port}"
    server = make_app(make_settings(tmp_path, database_url, BASE_URL=base, REDIS_URL=proxy.url, REDIS_PREFIX=prefix),
                      clock=clock)
    runner = web.AppRunner(server)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    patients = [await add_member(app, practice, "patient", name) for name in ("erika", "paul")]
    clinician = await add_member(app, practice, "clinician", "dr-deich")
    plan = Appointment.parse("Kontrolle", clock.now() + timedelta(minutes=5), 20, now=clock.now())
    consultation = (await services.consultations.schedule(practice, clinician, plan, patient_ids=patients)).consultation
    for patient in patients:
        await server[services_key].waiting_room.state.admit(practice.id, consultation.id, f"u{patient}")
    erika, paul = Participant("Erika", []), Participant("Paul", [])
    try:
        await erika.start(base, consultation.id, "erika", PASSWORD)
        await paul.start(base, consultation.id, "paul", PASSWORD)
        counts = await until_connected([erika, paul], within=40)
        assert {c["topology"] for c in counts.values()} == {"p2p"}
        await until_frames_flow([erika, paul], frames=10, within=30)

        await proxy.cut()
        async with aiohttp.ClientSession() as http, http.get(f"{base}/readyz") as ready:
            assert ready.status == 503 and (await ready.json())["rooms"] == "unreachable"
        # Several seconds without Redis, longer than a heartbeat of the sockets.
        away = await until_frames_flow([erika, paul], frames=40, within=30)
        async with aiohttp.ClientSession() as http, http.get(f"{base}/readyz") as ready:
            assert ready.status == 503
        await proxy.start()
        back = await until_frames_flow([erika, paul], frames=10, within=30)
        for name in ("Erika", "Paul"):
            assert away[name]["state"] == back[name]["state"] == "connected", (name, away[name], back[name])
            assert back[name]["sockets_opened"] == 1, f"{name}'s socket was cut: {back[name]}"
            assert back[name]["session"] == counts[name]["session"]
            assert back[name]["faults"] == []
    finally:
        await asyncio.gather(erika.stop(), paul.stop())
        await proxy.start()  # let the instance say goodbye to Redis
        await runner.cleanup()
        await proxy.cut()
        await drop_prefix(prefix)
