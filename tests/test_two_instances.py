"""Two web instances, each its own app on its own port, sharing one database and one
Redis: the patient's page talks to A, the clinician's to B, as behind a load balancer."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import pytest

from smartpractice.rooms import call_protocol
from smartpractice.scheduling.consultations import Appointment
from tests.helpers import (
    JOIN,
    ORIGIN,
    add_member,
    close_code,
    log_in,
    make_app,
    make_settings,
    next_of,
    participants,
    post_form,
    waiting_people,
)
from tests.redis_rooms import REDIS_URL, drop_prefix, new_prefix


@pytest.fixture
async def instances(aiohttp_client, tmp_path, database_url, clock):
    """(A, B): two running apps on one database and one Redis key prefix."""
    prefix = new_prefix()
    settings = make_settings(tmp_path, database_url, REDIS_URL=REDIS_URL, REDIS_PREFIX=prefix)
    a = await aiohttp_client(make_app(settings, clock=clock))
    b = await aiohttp_client(make_app(settings, clock=clock))
    assert a.port != b.port
    yield a, b
    await a.close()
    await b.close()
    await drop_prefix(prefix)


@pytest.fixture
async def booked(app, services, clock, practice, clinician):
    """Kontrolle in ten minutes with Erika, and Oma, who comes along."""
    erika = await add_member(app, practice, "patient", "erika")
    oma = await add_member(app, practice, "patient", "oma")
    plan = Appointment.parse("Kontrolle", clock.now() + timedelta(minutes=10), 20, now=clock.now())
    scheduled = await services.consultations.schedule(practice, clinician.user_id, plan, patient_ids=[erika, oma])
    return scheduled.consultation


async def test_patient_on_a_clinician_on_b(aiohttp_client, instances, practice, booked):
    a, b = instances
    oma_browser = await aiohttp_client(a.server)  # Oma's own browser, also on A
    await log_in(b, "dr-berg")
    await log_in(a, "erika")
    await log_in(oma_browser, "oma")
    cid = booked.id
    async with b.ws_connect(f"/p/{practice.slug}/waiting-room/ws", headers=ORIGIN) as staff:
        await staff.send_json(JOIN)
        assert await waiting_people(staff) == []
        oma_waiting = await oma_browser.ws_connect(f"/c/{cid}/ws", headers=ORIGIN)
        await oma_waiting.send_json(JOIN)
        await next_of(oma_waiting, "waiting")
        async with a.ws_connect(f"/c/{cid}/ws", headers=ORIGIN) as waiting:
            await waiting.send_json(JOIN)
            await next_of(waiting, "waiting")
            # Both wait on A and appear in the list on B.
            people = await waiting_people(staff)
            while len(people) < 2:
                people = await waiting_people(staff)
            erika = next(person for person in people if person["name"] == "Erika")
            assert erika["consultation"] == cid and "Kontrolle" in erika["title"]

            await staff.send_json({"type": "message", "consultation": cid, "participant": erika["participant"],
                                   "text": "Gleich geht es los."})
            assert (await next_of(waiting, "message"))["text"] == "Gleich geht es los."
            await staff.send_json({"type": "admit", "consultation": cid, "participant": erika["participant"]})
            await next_of(waiting, "admitted")
            assert [p["name"] for p in await waiting_people(staff)] == ["Oma"]

        # Admitted on B, let in on A: her call page and socket are accepted there.
        page = await a.get(f"/c/{cid}/call", headers={"Accept-Language": "en"})
        assert page.status == 200 and "You are in the consultation." in await page.text()
        patient = await a.ws_connect(f"/c/{cid}/call/ws", headers=ORIGIN)
        await patient.send_json(JOIN)
        welcome = await next_of(patient, "welcome")
        doctor = await b.ws_connect(f"/c/{cid}/call/ws", headers=ORIGIN)
        await doctor.send_json(JOIN)
        listing = await participants(doctor, 2)
        assert listing["topology"] == "p2p"
        await participants(patient, 2)
        berg = next(p for p in listing["participants"] if p["role"] == "clinician")

        # Signalling crosses the instances both ways.
        await doctor.send_json({"type": "offer", "to": welcome["id"], "sdp": "v=0 from B"})
        assert (await next_of(patient, "offer"))["sdp"] == "v=0 from B"
        await patient.send_json({"type": "answer", "to": berg["id"], "sdp": "v=0 from A"})
        assert (await next_of(doctor, "answer"))["sdp"] == "v=0 from A"

        # Her connection to A drops: B shows her reconnecting; she comes back through B.
        await patient.close()
        gone = await participants(doctor, 2)
        while sorted(p["state"] for p in gone["participants"]) != ["connected", "reconnecting"]:
            gone = await participants(doctor, 2)
        erika_on_b = await aiohttp_client(b.server)  # the load balancer sends her reloaded page to B
        await log_in(erika_on_b, "erika")
        again = await erika_on_b.ws_connect(f"/c/{cid}/call/ws", headers=ORIGIN)
        await again.send_json(JOIN)
        await next_of(again, "welcome")
        listing = await participants(doctor, 2)
        while [p["state"] for p in listing["participants"]] != ["connected", "connected"]:
            listing = await participants(doctor, 2)

        # A second tab, on A, takes her seat over: the tab on B is told and closed.
        second = await a.ws_connect(f"/c/{cid}/call/ws", headers=ORIGIN)
        await second.send_json(JOIN)
        await next_of(second, "welcome")
        assert (await next_of(again, "replaced"))["type"] == "replaced"
        assert await close_code(again) == call_protocol.CLOSE_REPLACED

        # Ending on B ends it on A: her call tab and Oma's waiting page are told.
        ended = await post_form(b, f"/p/{practice.slug}/consultations/{cid}/end", {})
        assert ended.status == 303
        await next_of(second, "ended")
        assert await close_code(second) == call_protocol.CLOSE_ENDED
        await next_of(oma_waiting, "ended")
        assert await close_code(oma_waiting) == call_protocol.CLOSE_ENDED
        await next_of(doctor, "ended")
        assert await waiting_people(staff) == []
        for socket in (doctor, second, oma_waiting):
            await socket.close()
    closed = await a.get(f"/c/{cid}", headers={"Accept-Language": "en"})
    assert closed.status == 410


async def test_someone_still_waiting_is_refused_a_call_socket_on_either_instance(instances, booked):
    for instance in instances:
        await log_in(instance, "erika")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await instance.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN)
        assert refused.value.status == 403
