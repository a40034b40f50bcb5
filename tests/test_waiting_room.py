"""The waiting room over real WebSockets: arrival pushed to the clinician, admit, texts, leaving."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import select

from smartpractice.scheduling.consultations import Appointment
from smartpractice.storage.tables import attendances, audit_log, calls, consultations
from tests.helpers import (
    JOIN,
    ORIGIN,
    add_member,
    log_in,
    mail_link,
    mail_text,
    next_of,
    post_form,
    waiting_people,
)

EN = {"Accept-Language": "en"}


@pytest.fixture
async def booked(services, app, clock, practice, clinician):
    """A consultation starting in ten minutes with the patient Erika."""
    erika = await add_member(app, practice, "patient", "erika")
    plan = Appointment.parse("Kontrolle", clock.now() + timedelta(minutes=10), 20, now=clock.now())
    scheduled = await services.consultations.schedule(practice, clinician.user_id, plan, patient_ids=[erika])
    return scheduled.consultation


async def test_arrival_is_pushed_and_admitting_moves_the_patient_to_the_call(client, other_browser, engine, practice, booked):
    await log_in(client, "dr-berg")
    await log_in(other_browser, "erika")
    async with client.ws_connect(f"/p/{practice.slug}/waiting-room/ws", headers=ORIGIN) as staff:
        await staff.send_json(JOIN)
        assert await waiting_people(staff) == []
        page = await other_browser.get(f"/c/{booked.id}", headers=EN)
        assert "Please wait" in await page.text()
        async with other_browser.ws_connect(f"/c/{booked.id}/ws", headers=ORIGIN) as patient:
            await patient.send_json(JOIN)
            assert (await patient.receive_json())["type"] == "waiting"
            [person] = await waiting_people(staff)
            assert person["name"] == "Erika" and person["consultation"] == booked.id
            assert "Kontrolle" in person["title"]

            await staff.send_json({"type": "message", "consultation": booked.id, "participant": person["participant"],
                                   "text": "Ich komme in 5 Minuten."})
            assert (await next_of(patient, "message"))["text"] == "Ich komme in 5 Minuten."

            await staff.send_json({"type": "admit", "consultation": booked.id, "participant": person["participant"]})
            await next_of(patient, "admitted")
            assert await waiting_people(staff) == []
        moved = await other_browser.get(f"/c/{booked.id}", allow_redirects=False)
        assert moved.status == 303 and moved.headers["Location"] == f"/c/{booked.id}/call"
        call = await other_browser.get(f"/c/{booked.id}/call", headers=EN)
        assert call.status == 200 and "You are in the consultation." in await call.text()
    async with engine.connect() as conn:
        assert (await conn.execute(select(consultations.c.state))).scalar_one() == "running"
        assert (await conn.execute(select(calls.c.ended_at))).scalar_one() is None


async def test_a_person_who_leaves_disappears_from_the_list(client, other_browser, practice, booked):
    await log_in(client, "dr-berg")
    await log_in(other_browser, "erika")
    async with client.ws_connect(f"/p/{practice.slug}/waiting-room/ws", headers=ORIGIN) as staff:
        await staff.send_json(JOIN)
        await waiting_people(staff)
        async with other_browser.ws_connect(f"/c/{booked.id}/ws", headers=ORIGIN) as waiting:
            await waiting.send_json(JOIN)
            assert len(await waiting_people(staff)) == 1
        assert await waiting_people(staff) == []


async def admit_everyone(client, other_browser, practice, consultation) -> None:
    """Clinician and patient log in; the patient waits and is let in with "admit all"."""
    await log_in(client, "dr-berg")
    await log_in(other_browser, "erika")
    async with client.ws_connect(f"/p/{practice.slug}/waiting-room/ws", headers=ORIGIN) as staff:
        await staff.send_json(JOIN)
        await waiting_people(staff)
        async with other_browser.ws_connect(f"/c/{consultation.id}/ws", headers=ORIGIN) as patient:
            await patient.send_json(JOIN)
            await waiting_people(staff)
            await staff.send_json({"type": "admit_all", "consultation": consultation.id})
            await next_of(patient, "admitted")


async def test_admit_all_and_the_call_record_of_join_leave_and_end(client, other_browser, engine, smtp, practice, booked):
    await admit_everyone(client, other_browser, practice, booked)
    # The call's signalling socket records who was in the call from when to when.
    async with other_browser.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN) as patient:
        await patient.send_json({"type": "join", "version": 1})
        await next_of(patient, "welcome")
        ended = await post_form(client, f"/p/{practice.slug}/consultations/{booked.id}/end", {})
        assert ended.status == 303
        await next_of(patient, "ended")
    async with engine.connect() as conn:
        [record] = (await conn.execute(select(attendances))).all()
        assert record.role == "patient" and record.client_kind == "desktop" and record.left_at is not None
        assert (await conn.execute(select(calls.c.ended_at))).scalar_one() is not None
    async with engine.connect() as conn:
        actions = (await conn.execute(select(audit_log.c.action).where(audit_log.c.object_kind == "consultation")
                                      .order_by(audit_log.c.id))).scalars().all()
    assert actions[-2:] == ["admitted", "consultation_ended"]
    closed = await other_browser.get(f"/c/{booked.id}", headers=EN)
    assert closed.status == 410 and "This consultation has ended." in await closed.text()
    past = await (await client.get(f"/p/{practice.slug}/consultations/past", headers=EN)).text()
    assert "Kontrolle" in past and re.search(r"<td>\d+:\d\d</td>", past)


async def test_a_cancelled_consultation_turns_the_waiting_room_away(client, other_browser, services, practice, booked):
    await services.consultations.cancel(practice, booked.id)
    await log_in(other_browser, "erika")
    page = await other_browser.get(f"/c/{booked.id}", headers=EN)
    assert page.status == 410 and "cancelled by the practice" in await page.text()
    async with other_browser.ws_connect(f"/c/{booked.id}/ws", headers=ORIGIN) as patient:
        await patient.send_json(JOIN)
        message = await patient.receive_json()
        assert message["type"] == "closed" and message["code"] == "consultation_cancelled"


async def test_guest_with_tan_lands_in_the_consultations_waiting_room(client, other_browser, services, smtp, clock, practice, clinician):
    from smartpractice.onboarding.invitations import Invitee

    plan = Appointment.parse("", clock.now() + timedelta(minutes=5), 15, now=clock.now())
    scheduled = await services.consultations.schedule(
        practice, clinician.user_id, plan, invitees=[Invitee.parse("gast@example.org", "Gabi Gast")])
    [message] = await smtp.wait_for(1)
    tan = re.search(r"\b(\d{4} \d{4})\b", mail_text(message)).group(1)
    admitted = await post_form(other_browser, mail_link(message), {"tan": tan})
    assert admitted.headers["Location"] == f"/c/{scheduled.consultation.id}"
    await log_in(client, "dr-berg")
    async with client.ws_connect(f"/p/{practice.slug}/waiting-room/ws", headers=ORIGIN) as staff:
        await staff.send_json(JOIN)
        await waiting_people(staff)
        async with other_browser.ws_connect(f"/c/{scheduled.consultation.id}/ws", headers=ORIGIN) as waiting:
            await waiting.send_json(JOIN)
            [person] = await waiting_people(staff)
            assert person["name"] == "Gabi Gast"


async def test_sockets_refuse_foreign_origins_strangers_and_nonsense(client, other_browser, app, practice, booked):
    await log_in(client, "dr-berg")
    with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
        await client.ws_connect(f"/p/{practice.slug}/waiting-room/ws", headers={"Origin": "https://evil.example"})
    assert foreign.value.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as nobody:
        await other_browser.ws_connect(f"/c/{booked.id}/ws", headers=ORIGIN)
    assert nobody.value.status == 401
    await add_member(app, practice, "patient", "fremd")
    await log_in(other_browser, "fremd")
    with pytest.raises(aiohttp.WSServerHandshakeError) as stranger:
        await other_browser.ws_connect(f"/c/{booked.id}/ws", headers=ORIGIN)
    assert stranger.value.status == 404
    async with client.ws_connect(f"/p/{practice.slug}/waiting-room/ws", headers=ORIGIN) as staff:
        await staff.send_json(JOIN)
        await waiting_people(staff)
        await staff.send_str("not json")
        assert (await next_of(staff, "error"))["code"] == "malformed"
        await staff.send_json({"type": "dance", "consultation": booked.id})
        assert (await next_of(staff, "error"))["code"] == "unknown_type"
        await staff.send_json({"type": "message", "consultation": booked.id, "participant": "u1", "text": "x" * 501})
        assert (await next_of(staff, "error"))["code"] == "message_invalid"


async def test_the_waiting_room_opens_with_the_join_window(other_browser, services, app, clock, practice, clinician):
    erika = await add_member(app, practice, "patient", "erika")
    plan = Appointment.parse("", clock.now() + timedelta(minutes=40), 15, now=clock.now())
    scheduled = await services.consultations.schedule(practice, clinician.user_id, plan, patient_ids=[erika])
    await log_in(other_browser, "erika")
    page = await (await other_browser.get(f"/c/{scheduled.consultation.id}", headers=EN)).text()
    assert "The waiting room opens on" in page
    async with other_browser.ws_connect(f"/c/{scheduled.consultation.id}/ws", headers=ORIGIN) as patient:
        await patient.send_json(JOIN)
        assert (await patient.receive_json())["type"] == "not_open"


async def test_a_running_consultation_left_by_everyone_is_ended_after_its_time(client, other_browser, services, engine, clock, practice, booked):
    await admit_everyone(client, other_browser, practice, booked)
    async with other_browser.ws_connect(f"/c/{booked.id}/call/ws", headers=ORIGIN) as patient:
        await patient.send_json({"type": "join", "version": 1})
        await next_of(patient, "welcome")
        clock.advance(hours=3)
        # Someone is still in the call: it stays running however late it is.
        assert await services.waiting_room.end_abandoned() == 0
    # The server records the leave as the socket closes, a moment after the client.
    async with asyncio.timeout(5):
        while await services.waiting_room.end_abandoned() == 0:  # noqa: ASYNC110 - polls the database
            await asyncio.sleep(0.05)
    async with engine.connect() as conn:
        assert (await conn.execute(select(consultations.c.state))).scalar_one() == "ended"
        assert (await conn.execute(select(calls.c.ended_at))).scalar_one() is not None


async def test_waiting_sockets_speak_a_versioned_protocol_and_answer_in_german(client, other_browser, practice, booked):
    await log_in(client, "dr-berg")
    await log_in(other_browser, "erika")
    async with client.ws_connect(f"/p/{practice.slug}/waiting-room/ws", headers=ORIGIN) as staff:
        await staff.send_json({"type": "admit_all", "consultation": booked.id})
        early = await next_of(staff, "error")
        assert early["code"] == "not_joined" and early["about"] == "admit_all"
        await staff.send_json({"type": "admit", "consultation": "eins", "participant": "u1"})
        assert (await next_of(staff, "error"))["message"] == "Ein Feld dieser Nachricht fehlt oder ist ungültig."
        await staff.send_json({"type": "join", "version": 2})
        outdated = await next_of(staff, "error")
        assert outdated["code"] == "version_unsupported"
        assert outdated["message"] == "Diese Seite ist veraltet; bitte laden Sie sie neu."
        assert await staff.receive() and staff.close_code == 4002
    async with other_browser.ws_connect(f"/c/{booked.id}/ws", headers=ORIGIN) as patient:
        await patient.send_json({"type": "admit", "consultation": booked.id, "participant": "u1"})
        assert (await next_of(patient, "error"))["code"] == "unknown_type"
        await patient.send_json(JOIN)
        assert (await next_of(patient, "waiting"))["version"] == 1
        await patient.send_json(JOIN)
        assert (await next_of(patient, "error"))["code"] == "already_joined"
