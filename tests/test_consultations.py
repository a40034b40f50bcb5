"""Scheduling: local times across clock changes, calendar files, mails, reminders once."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import select, update

from smartpractice.errors import UserError
from smartpractice.keys import services_key
from smartpractice.onboarding.invitations import Invitee
from smartpractice.scheduling.consultations import Appointment
from smartpractice.storage.tables import audit_log, consultations, mails, practices
from tests.helpers import (
    add_member,
    form_token,
    log_in,
    mail_text,
    make_app,
    make_settings,
    post_form,
)

EN = {"Accept-Language": "en"}
# Europe/Berlin moves to summer time in the night to Sunday, 29 March 2026.
BEFORE_SPRING = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)


def calendar_of(message) -> Calendar:
    [part] = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    # Without a charset some mail clients read a name with umlauts as Latin-1.
    assert part.get_content_charset() == "utf-8", part["Content-Type"]
    return Calendar.from_ical(part.get_content())


async def schedule_form(client, practice, **fields):
    """Send the scheduling form as a browser does, with the one-time token of its page."""
    token = await form_token(client, f"/p/{practice.slug}/consultations/new")
    form = {"title": "Befundbesprechung", "day": "2026-03-30", "time": "10:00", "duration": "20",
            "patient": "", "guest_email": "", "guest_name": "", "guest_language": "de", "form_token": token, **fields}
    return await post_form(client, f"/p/{practice.slug}/consultations", form, headers=EN)


async def starts_of(engine) -> list[datetime]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(consultations.c.starts_at).order_by(consultations.c.id))).scalars())


async def test_local_times_map_to_utc_across_the_spring_clock_change(client, engine, clock, practice, clinician):
    clock.current = BEFORE_SPRING
    await log_in(client, "dr-berg")
    assert (await schedule_form(client, practice, day="2026-03-28")).status == 303
    assert (await schedule_form(client, practice, day="2026-03-29")).status == 303
    # 10:00 in Berlin is 09:00 UTC in winter time and 08:00 UTC in summer time.
    assert await starts_of(engine) == [datetime(2026, 3, 28, 9, 0, tzinfo=UTC), datetime(2026, 3, 29, 8, 0, tzinfo=UTC)]
    week = await (await client.get(f"/p/{practice.slug}/consultations?day=2026-03-28&view=week", headers=EN)).text()
    assert week.count("10:00–10:20") == 2

    skipped = await schedule_form(client, practice, day="2026-03-29", time="02:30", title="Nachts")
    assert skipped.status == 400
    page = await skipped.text()
    assert "02:30 does not exist on 2026-03-29" in page and 'value="Nachts"' in page
    assert len(await starts_of(engine)) == 2


async def test_a_day_of_the_autumn_change_has_twenty_five_hours(client, engine, clock, practice, clinician):
    clock.current = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
    await log_in(client, "dr-berg")
    for time in ("00:30", "23:30"):
        assert (await schedule_form(client, practice, day="2026-10-25", time=time)).status == 303
    day = await (await client.get(f"/p/{practice.slug}/consultations?day=2026-10-25", headers=EN)).text()
    assert "00:30–00:50" in day and "23:30–23:50" in day
    assert await starts_of(engine) == [datetime(2026, 10, 24, 22, 30, tzinfo=UTC), datetime(2026, 10, 25, 22, 30, tzinfo=UTC)]


async def test_bad_input_reshows_the_form_and_schedules_nothing(client, engine, clock, practice, clinician):
    clock.current = BEFORE_SPRING
    await log_in(client, "dr-berg")
    cases = {
        "Please enter a date as YYYY-MM-DD.": {"day": "30.03.2026"},
        "Please enter a time as HH:MM.": {"time": "soon"},
        "The duration must be between 5 and 480 minutes.": {"duration": "0"},
        "This time has already passed.": {"day": "2026-03-01"},
        "Please enter a valid email address.": {"guest_email": "not-an-address"},
        "This patient does not belong to the practice.": {"patient": "999999"},
    }
    for message, fields in cases.items():
        response = await schedule_form(client, practice, **fields)
        assert response.status == 400, message
        assert message in await response.text()
    assert await starts_of(engine) == []


async def test_calendar_uid_stays_while_sequence_rises_through_change_and_cancel(client, app, engine, smtp, clock, practice, clinician):
    clock.current = BEFORE_SPRING
    erika = await add_member(app, practice, "patient", "erika")
    await log_in(client, "dr-berg")
    created = await schedule_form(client, practice, patient=str(erika), guest_email="gast@example.org")
    assert created.status == 303
    consultation_id = int(re.search(r"/consultations/(\d+)$", created.headers["Location"]).group(1))
    path = f"/p/{practice.slug}/consultations/{consultation_id}"
    changed = await post_form(client, path, {"title": "Befundbesprechung", "day": "2026-03-30", "time": "11:15", "duration": "20"})
    assert changed.status == 303
    assert (await post_form(client, path + "/cancel", {})).status == 303

    messages = await smtp.wait_for(6)
    for address in ("erika@example.org", "gast@example.org"):
        entries = [calendar_of(m) for m in smtp.to(address)]
        assert [str(c["method"]) for c in entries] == ["REQUEST", "REQUEST", "CANCEL"]
        events = [c.walk("VEVENT")[0] for c in entries]
        assert len({str(e["uid"]) for e in events}) == 1
        assert [int(e["sequence"]) for e in events] == [0, 1, 2]
        assert events[1].decoded("dtstart") == datetime(2026, 3, 30, 9, 15, tzinfo=UTC)
        assert str(events[2]["status"]) == "CANCELLED"
        # The title may say why someone sees a doctor: it stays out of mails and calendars.
        assert all("Befundbesprechung" not in mail_text(m) and "Befundbesprechung" not in m.as_string()
                   for m in smtp.to(address))
    erika_mail = smtp.to("erika@example.org")[0]
    assert "Montag, 30. März 2026, 10:00" in mail_text(erika_mail)
    assert f"/c/{consultation_id}" in mail_text(erika_mail)
    guest_mail = smtp.to("gast@example.org")[0]
    assert re.search(r"\d{4} \d{4}", mail_text(guest_mail)) and "/invitation/" in mail_text(guest_mail)
    assert len(messages) == 6
    async with engine.connect() as conn:
        rows = (await conn.execute(select(audit_log.c.action, audit_log.c.actor_user_id)
                                   .where(audit_log.c.object_kind == "consultation").order_by(audit_log.c.id))).all()
    assert rows == [(action, clinician.user_id) for action in
                    ("consultation_created", "consultation_changed", "consultation_cancelled")]


async def test_participants_are_capped_by_the_practice_setting(services, clock, practice, clinician):
    plan = Appointment.parse("", clock.now() + timedelta(days=1), 15, now=clock.now())
    guests = [Invitee.parse(f"g{n}@example.org") for n in range(5)]
    with pytest.raises(UserError) as refused:
        await services.consultations.schedule(practice, clinician.user_id, plan, invitees=guests)
    assert refused.value.code == "too_many_participants"
    await services.consultations.schedule(practice, clinician.user_id, plan, invitees=guests[:4])


async def test_reminders_go_out_once_each_even_across_a_restart(aiohttp_client, client, services, app, engine, settings, clock, practice, clinician):
    erika = await add_member(app, practice, "patient", "erika")
    start = clock.now() + timedelta(hours=3)
    plan = Appointment.parse("", start, 15, now=clock.now())
    await services.consultations.schedule(practice, clinician.user_id, plan, patient_ids=[erika])

    async def reminders_queued() -> int:
        async with engine.connect() as conn:
            query = select(mails.c.id).where(mails.c.kind == "consultation_reminder")
            return len((await conn.execute(query)).all())

    assert await services.reminders.send_due() == 0
    clock.current = start - timedelta(minutes=60)
    assert await services.reminders.send_due() == 1
    assert await services.reminders.send_due() == 0
    # A second server on the same database (or this one after a restart) sends nothing again.
    restarted = (await aiohttp_client(make_app(settings, clock=clock))).app[services_key]
    assert await restarted.reminders.send_due() == 0
    clock.current = start - timedelta(minutes=10)
    assert await restarted.reminders.send_due() == 1
    assert await services.reminders.send_due() == 0
    assert await reminders_queued() == 2


async def test_late_participants_and_a_server_that_was_down_get_one_reminder(services, app, clock, practice, clinician):
    erika = await add_member(app, practice, "patient", "erika")
    start = clock.now() + timedelta(minutes=30)
    await services.consultations.schedule(practice, clinician.user_id, Appointment.parse("", start, 15, now=clock.now()),
                                          patient_ids=[erika])
    # Invited 30 minutes ahead: no "one hour before" mail, only the 10-minute one.
    clock.current = start - timedelta(minutes=5)
    assert await services.reminders.send_due() == 1
    assert await services.reminders.send_due() == 0


async def test_rescheduling_brings_the_reminders_back(services, app, clock, practice, clinician):
    erika = await add_member(app, practice, "patient", "erika")
    start = clock.now() + timedelta(hours=2)
    scheduled = await services.consultations.schedule(
        practice, clinician.user_id, Appointment.parse("", start, 15, now=clock.now()), patient_ids=[erika])
    clock.current = start - timedelta(minutes=55)
    assert await services.reminders.send_due() == 1
    later = start + timedelta(days=1)
    await services.consultations.reschedule(practice, scheduled.consultation.id, Appointment.parse("", later, 15, now=clock.now()))
    clock.current = later - timedelta(minutes=59)
    assert await services.reminders.send_due() == 1


async def test_patient_sees_upcoming_consultations_and_joins_only_in_the_window(client, other_browser, services, app, clock, practice, clinician):
    erika = await add_member(app, practice, "patient", "erika")
    start = clock.now() + timedelta(minutes=20)
    scheduled = await services.consultations.schedule(
        practice, clinician.user_id, Appointment.parse("Kontrolle", start, 15, now=clock.now()), patient_ids=[erika])
    await log_in(other_browser, "erika")
    page = await (await other_browser.get(f"/p/{practice.slug}/", headers=EN)).text()
    assert "Kontrolle" in page and "You can join from" in page and f'href="/c/{scheduled.consultation.id}"' not in page
    clock.current = start - timedelta(minutes=14)
    page = await (await other_browser.get(f"/p/{practice.slug}/", headers=EN)).text()
    assert f'href="/c/{scheduled.consultation.id}"' in page


async def test_other_practices_and_patients_get_404(client, other_browser, services, app, clock, practice, clinician):
    other = await services.practices.create("Praxis am See", admin_email="see@example.org", admin_username="see-admin")
    theirs = await add_member(app, other.practice, "clinician", "dr-see")
    scheduled = await services.consultations.schedule(
        other.practice, theirs, Appointment.parse("", clock.now() + timedelta(hours=1), 15, now=clock.now()))
    await log_in(client, "dr-berg")
    base = f"/p/{other.practice.slug}/consultations"
    assert (await client.get(base)).status == 404
    # Practice A's slug with practice B's id: the consultation is not found either.
    own = f"/p/{practice.slug}/consultations/{scheduled.consultation.id}"
    assert (await client.get(own)).status == 404
    assert (await post_form(client, own + "/cancel", {})).status == 404
    assert (await client.get(f"/c/{scheduled.consultation.id}")).status == 404
    await add_member(app, practice, "patient", "erika")
    await log_in(other_browser, "erika")
    assert (await other_browser.get(f"/c/{scheduled.consultation.id}")).status == 404


async def test_the_server_sends_due_reminders_by_itself(aiohttp_client, tmp_path, database_url, smtp, clock):
    settings = make_settings(tmp_path, database_url, SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp.controller.port),
                             SMTP_TLS="none", HOUSEKEEPING_SECONDS="1")
    app = (await aiohttp_client(make_app(settings, clock=clock))).app
    services = app[services_key]
    practice = (await services.practices.create("Praxis Uhr", admin_email="uhr@example.org", admin_username="uhr")).practice
    clinician = await add_member(app, practice, "clinician", "dr-uhr")
    erika = await add_member(app, practice, "patient", "erika")
    start = clock.now() + timedelta(minutes=30)
    await services.consultations.schedule(practice, clinician, Appointment.parse("", start, 15, now=clock.now()),
                                          patient_ids=[erika])
    await smtp.wait_for(1)
    clock.current = start - timedelta(minutes=9)
    [_, reminder] = await smtp.wait_for(2)
    assert reminder["Subject"] == "Erinnerung: Videosprechstunde bei Praxis Uhr"


async def test_an_overlapping_consultation_is_flagged_on_its_page(client, services, clock, practice, clinician):
    clock.current = BEFORE_SPRING
    at = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)  # 10:00 in Berlin

    async def plan(title: str, start: datetime, minutes: int = 20) -> int:
        scheduled = await services.consultations.schedule(
            practice, clinician.user_id, Appointment.parse(title, start, minutes, now=clock.now()))
        return scheduled.consultation.id

    first = await plan("Befund", at)
    second = await plan("Kontrolle", at + timedelta(minutes=10))
    after = await plan("Später", at + timedelta(minutes=30))
    cancelled = await plan("Abgesagt", at + timedelta(minutes=30))
    await services.consultations.cancel(practice, cancelled)
    await log_in(client, "dr-berg")

    async def overlaps(consultation_id: int) -> list[str]:
        page = await (await client.get(f"/p/{practice.slug}/consultations/{consultation_id}", headers=EN)).text()
        warning = re.search(r'<div class="error" id="overlap".*?</div>', page, re.S)
        return re.findall(r"/consultations/(\d+)\"", warning.group(0)) if warning else []

    assert await overlaps(first) == [str(second)]
    assert await overlaps(second) == [str(first)]
    page = await (await client.get(f"/p/{practice.slug}/consultations/{first}", headers=EN)).text()
    assert "Monday, March 30, 2026, 10:10 AM" in page  # the other one's start, in the practice's zone
    assert await overlaps(after) == []  # starts as the second ends; the cancelled one does not count


async def test_a_cancellation_says_how_to_reach_the_practice(app, services, engine, smtp, clock, practice, clinician):
    erika = await add_member(app, practice, "patient", "erika")
    plan = Appointment.parse("Kontrolle", clock.now() + timedelta(days=2), 20, now=clock.now())
    scheduled = await services.consultations.schedule(practice, clinician.user_id, plan, patient_ids=[erika])
    async with engine.begin() as conn:
        await conn.execute(update(practices).where(practices.c.id == practice.id).values(contact="030 1234567"))
    await services.consultations.cancel(practice, scheduled.consultation.id)
    cancelled = (await smtp.wait_for(2))[-1]
    assert "abgesagt" in str(cancelled["Subject"])
    assert "wenden Sie sich bitte an die Praxis: 030 1234567" in mail_text(cancelled)
