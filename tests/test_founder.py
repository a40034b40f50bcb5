"""The founder as clinician: at sign-up the founder says whether they treat patients. One
who does is clinician and admin at once (schedules, sees their waiting room, takes a seat);
one who does not administers only and has no clinician pages."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import select

from smartpractice.cli import DEMO_PRACTICE, _ensure_demo
from smartpractice.scheduling.consultations import Appointment
from smartpractice.storage.tables import consultations
from smartpractice.times import local
from tests.helpers import (
    APPLICATION,
    JOIN,
    ORIGIN,
    add_member,
    enrol_second_factor,
    form_token,
    invite_staff,
    log_in,
    mail_link,
    next_of,
    post_form,
    send_signup,
    waiting_people,
)

EN = {"Accept-Language": "en"}
ZONE = "Europe/Berlin"  # the practice's zone unless changed


async def founded(client, services, smtp, *, treats_patients: str):
    """A one-doctor practice signed up through the form, confirmed, its founder logged in."""
    application = {**APPLICATION, "kind": "single", "treats_patients": treats_patients}
    assert (await send_signup(client, application, headers=EN)).status == 200  # an English founder
    [mail] = await smtp.wait_for(1)
    await post_form(client, mail_link(mail), {})
    founder = await services.users.by_login("dr-birke")
    await enrol_second_factor(client.app, founder.id)
    assert (await log_in(client, "dr-birke", APPLICATION["password"])).status == 303
    practice = await services.practices.by_slug("hausarztpraxis-birke")
    return practice, founder


async def test_a_founder_who_treats_patients_schedules_and_admits_in_their_waiting_room(
    client, other_browser, services, app, engine, smtp, clock,
):
    practice, founder = await founded(client, services, smtp, treats_patients="yes")
    dashboard = await (await client.get(f"/p/{practice.slug}/", headers=EN)).text()
    assert f'href="/p/{practice.slug}/consultations/new"' in dashboard and 'id="waiting-room"' in dashboard
    assert f'href="/p/{practice.slug}/staff"' in dashboard  # still the practice's admin

    usage = await services.plans.usage(practice.id)
    assert (usage.used, usage.seats) == (1, 1)
    # The one seat of a single practice is the founder's: a further clinician needs another.
    full = await invite_staff(client, practice, "dr-lind@example.org", "clinician", headers=EN)
    assert full.status == 400 and "seat of your plan is taken" in await full.text()

    erika = await add_member(app, practice, "patient", "erika")
    starts = local(clock.now() + timedelta(minutes=10), ZONE)
    token = await form_token(client, f"/p/{practice.slug}/consultations/new")
    planned = await post_form(client, f"/p/{practice.slug}/consultations", {
        "title": "Kontrolle", "day": starts.date().isoformat(), "time": starts.strftime("%H:%M"), "duration": "20",
        "patient": str(erika), "guest_email": "", "guest_name": "", "guest_language": "de", "form_token": token,
    })
    assert planned.status == 303
    async with engine.connect() as conn:
        [(consultation_id, clinician_id)] = (await conn.execute(select(consultations.c.id, consultations.c.clinician_id))).all()
    assert clinician_id == founder.id

    await log_in(other_browser, "erika")
    async with client.ws_connect(f"/p/{practice.slug}/waiting-room/ws", headers=ORIGIN) as staff:
        await staff.send_json(JOIN)
        assert await waiting_people(staff) == []
        async with other_browser.ws_connect(f"/c/{consultation_id}/ws", headers=ORIGIN) as patient:
            await patient.send_json(JOIN)
            [person] = await waiting_people(staff)
            assert person["name"] == "Erika" and person["consultation"] == consultation_id
            await staff.send_json({"type": "admit", "consultation": consultation_id, "participant": person["participant"]})
            await next_of(patient, "admitted")
    call = await client.get(f"/c/{consultation_id}/call", headers=EN)
    assert call.status == 200 and "End the consultation" in await call.text()


async def test_a_founder_who_does_not_treat_patients_has_no_clinician_pages(
    client, services, app, smtp, clock,
):
    practice, founder = await founded(client, services, smtp, treats_patients="no")
    slug = practice.slug
    dashboard = await (await client.get(f"/p/{slug}/", headers=EN)).text()
    assert f'href="/p/{slug}/staff"' in dashboard
    assert "consultations/new" not in dashboard and 'id="waiting-room"' not in dashboard
    usage = await services.plans.usage(practice.id)
    assert (usage.used, usage.seats) == (0, 1)

    assert (await client.get(f"/p/{slug}/consultations/new")).status == 404
    refused = await post_form(client, f"/p/{slug}/consultations", {"title": "x", "day": "2026-12-02", "time": "10:00",
                                                                   "duration": "20", "form_token": "t" * 22})
    assert refused.status == 404
    with pytest.raises(aiohttp.WSServerHandshakeError) as socket:
        await client.ws_connect(f"/p/{slug}/waiting-room/ws", headers=ORIGIN)
    assert socket.value.status == 404
    agenda = await (await client.get(f"/p/{slug}/consultations", headers=EN)).text()
    assert "consultations/new" not in agenda

    # A clinician the founder took on holds consultations; the founder cannot enter them.
    doctor = await add_member(app, practice, "clinician", "dr-lind")
    plan = Appointment.parse("Kontrolle", clock.now() + timedelta(minutes=5), 20, now=clock.now())
    consultation = (await services.consultations.schedule(practice, doctor, plan)).consultation
    assert (await client.get(f"/c/{consultation.id}")).status == 404
    assert (await client.get(f"/c/{consultation.id}/call")).status == 404
    assert (await services.plans.usage(practice.id)).used == 1


async def test_the_founder_must_answer_whether_they_treat_patients(client, smtp):
    response = await send_signup(client, {**APPLICATION, "treats_patients": ""}, headers=EN)
    page = await response.text()
    assert response.status == 400 and "whether you treat patients yourself" in page
    assert 'value="Hausarztpraxis Birke"' in page
    german = await send_signup(client, {**APPLICATION, "treats_patients": "maybe"})
    assert german.status == 400 and "ob Sie selbst Patientinnen und Patienten behandeln" in await german.text()


async def test_the_demo_admin_treats_patients(services):
    """`serve --demo` makes a one-person practice to try everything: its admin plans
    consultations and has a waiting room, as a founder who treats patients does."""
    username, _ = await _ensure_demo(services)
    admin = await services.users.by_login(username)
    [membership] = await services.practices.memberships_of(admin.id)
    assert membership.practice.name == DEMO_PRACTICE
    assert membership.is_admin and membership.is_clinician
