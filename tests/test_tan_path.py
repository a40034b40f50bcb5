"""The TAN path over HTTP: the invitation code on the login page, a used TAN that never
strands the guest, a new code by mail, the guest's session and its way back, an early
visit, and forms that make one record and one mail however often they are sent. Each
refusal is checked for its German message and for leaving everything else as it was."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from aiohttp import ClientSession, CookieJar
from icalendar import Calendar
from sqlalchemy import func, select, update

from smartpractice.onboarding.invitations import Invitee
from smartpractice.scheduling.consultations import Appointment
from smartpractice.storage.tables import (
    audit_log,
    consultations,
    invitations,
    login_sessions,
    mails,
    participants,
    practices,
)
from tests.helpers import (
    code_in,
    csrf_token,
    form_token,
    invite,
    log_in,
    mail_link,
    mail_settled,
    mail_text,
    post_form,
    reissue,
    tan_in,
)

DE = {"Accept-Language": "de"}


@contextlib.asynccontextmanager
async def device(client):
    """Another browser on another device: its own cookies, the same server."""
    async with ClientSession(base_url=str(client.make_url("/")), cookie_jar=CookieJar(unsafe=True)) as session:
        yield session


async def invited(client, smtp, practice, *, count: int = 1):
    """Dr. Berg invites Gabi with "Mit TAN einladen": the invitation mail."""
    await log_in(client, "dr-berg")
    assert (await invite(client, practice)).status == 303
    return (await smtp.wait_for(count))[count - 1]


async def state(engine) -> tuple:
    """Everything a refused attempt must leave as it was: the invitations' rows, guest
    sessions, mails, and the audit entries about invitations."""
    async with engine.connect() as conn:
        rows = [tuple(row) for row in await conn.execute(select(invitations).order_by(invitations.c.id))]
        guests = (await conn.execute(select(func.count()).select_from(login_sessions)
                                     .where(login_sessions.c.invitation_id.is_not(None)))).scalar_one()
        sent = (await conn.execute(select(func.count()).select_from(mails))).scalar_one()
        audited = (await conn.execute(select(func.count()).select_from(audit_log)
                                      .where(audit_log.c.object_kind == "invitation"))).scalar_one()
    return rows, guests, sent, audited


async def count(engine, table, *where) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one()


async def audit_actions(engine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(audit_log.c.action).order_by(audit_log.c.id))).scalars())


async def no_more_mail(smtp, expected: int) -> None:
    """Give the sender time to deliver a mail that should not exist, then count."""
    await asyncio.sleep(1.5)
    assert len(smtp.messages) == expected, [m["Subject"] for m in smtp.messages]


async def test_the_login_page_takes_the_invitation_code_and_the_tan(client, other_browser, services, engine, smtp, practice, clinician):
    message = await invited(client, smtp, practice)
    [view] = await services.invitations.list(practice.id)
    page = await (await other_browser.get("/login", headers=DE)).text()
    assert "Anmeldung mit TAN" in page and "Einladungscode" in page
    # Typed as people do: lower case, a space instead of the dash.
    typed = code_in(message).lower().replace("-", " ")
    entered = await post_form(other_browser, "/login/tan", {"code": typed, "tan": tan_in(message)})
    assert entered.status == 303 and entered.headers["Location"] == f"/c/{view.consultation_id}"
    room = await (await other_browser.get(entered.headers["Location"], headers=DE)).text()
    assert "Wartezimmer" in room and "Bitte warten Sie" in room
    assert "guest_login" in await audit_actions(engine)


async def test_a_wrong_code_changes_nothing_and_says_so(client, other_browser, services, engine, smtp, practice, clinician):
    message = await invited(client, smtp, practice)
    before = await state(engine)
    refused = await post_form(other_browser, "/login/tan", {"code": "ZZZZ-ZZZZ", "tan": tan_in(message)}, headers=DE)
    assert refused.status == 401
    page = await refused.text()
    assert "Zu diesem Code gibt es keine Einladung." in page and 'value="ZZZZ-ZZZZ"' in page
    empty = await post_form(other_browser, "/login/tan", {"code": " ", "tan": tan_in(message)}, headers=DE)
    assert empty.status == 401 and "Bitte geben Sie den Einladungscode aus Ihrer Mail ein." in await empty.text()
    assert await state(engine) == before


async def test_five_wrong_tans_void_the_code_in_use_and_a_new_code_gets_the_guest_in(client, other_browser, services, engine, smtp, practice, clinician):
    """Anyone who knows the code can type wrong TANs; the guest must still get in: five
    wrong tries void that TAN only, and "Neuen Code senden" mails one that works."""
    async with engine.begin() as conn:
        await conn.execute(update(practices).where(practices.c.id == practice.id).values(contact="030 1234567"))
    message = await invited(client, smtp, practice)
    code, link = code_in(message), mail_link(message)
    for expected in ("Sie haben noch 4 Versuche.", "Sie haben noch 3 Versuche.", "Sie haben noch 2 Versuche.", "Sie haben noch einen Versuch."):
        wrong = await post_form(other_browser, "/login/tan", {"code": code, "tan": "0000 0000"}, headers=DE)
        assert wrong.status == 401 and expected in await wrong.text(), expected
    voided = await post_form(other_browser, "/login/tan", {"code": code, "tan": "0000 0000"}, headers=DE)
    page = await voided.text()
    assert voided.status == 401 and "deshalb gilt diese TAN nicht mehr" in page
    assert "öffnen Sie den Link in Ihrer Einladungsmail" in page and "eine neue TAN an g…@example.org senden" in page
    assert "So erreichen Sie die Praxis: 030 1234567" in page
    [view] = await services.invitations.list(practice.id)
    assert view.state == "voided"
    before = await state(engine)
    # The voided TAN works no more, even the right one; trying it changes nothing.
    right = await post_form(other_browser, "/login/tan", {"code": code, "tan": tan_in(message)}, headers=DE)
    assert right.status == 401 and "gilt diese TAN nicht mehr" in await right.text()
    assert await state(engine) == before

    # The guest opens the mail's link: the invitation holds and offers a new code.
    async with device(client) as phone:
        opened = await phone.get(link, headers=DE)
        page = await opened.text()
        assert opened.status == 200 and "Die Einladung selbst gilt weiter" in page and "Neuen Code senden" in page
        by_link = await post_form(phone, link, {"tan": tan_in(message)}, headers=DE)
        assert by_link.status == 401 and "mit der Schaltfläche unten eine neue TAN" in await by_link.text()
        asked = await post_form(phone, link + "/new-tan", {"form_token": await form_token(phone, link)})
        assert asked.status == 303 and asked.headers["Location"] == link + "?sent=1"
        fresh = (await smtp.wait_for(2))[1]
        assert fresh["To"] == "gast@example.org" and tan_in(fresh) != tan_in(message)
        entered = await post_form(phone, link, {"tan": tan_in(fresh)})
        assert entered.status == 303 and entered.headers["Location"] == f"/c/{view.consultation_id}"
    await no_more_mail(smtp, 2)
    actions = await audit_actions(engine)
    assert actions.count("invitation_tan_voided") == 1 and actions.count("invitation_tan_sent") == 1
    assert actions.count("guest_login") == 1 and "invitation_locked" not in actions


async def test_a_new_tan_has_five_tries_of_its_own(client, other_browser, services, engine, smtp, practice, clinician):
    message = await invited(client, smtp, practice)
    link = mail_link(message)
    for _ in range(5):
        await post_form(other_browser, link, {"tan": "0000 0000"})
    assert (await post_form(other_browser, link + "/new-tan", {"form_token": await form_token(other_browser, link)})).status == 303
    fresh = (await smtp.wait_for(2))[1]
    wrong = await post_form(other_browser, link, {"tan": "0000 0000"}, headers=DE)
    assert wrong.status == 401 and "Sie haben noch 4 Versuche." in await wrong.text()
    assert (await post_form(other_browser, link, {"tan": tan_in(fresh)})).status == 303


async def test_fifteen_wrong_tans_in_all_lock_the_invitation_however_many_new_ones_came(
        client, other_browser, services, engine, smtp, practice, clinician):
    """A new TAN has tries of its own, but the invitation's count goes on (a new code does
    not reset it): after three TANs' worth of wrong guesses the invitation is locked, even
    the newest right TAN is refused, no new one is sent, and the guest is sent to the practice."""
    message = await invited(client, smtp, practice)
    link = mail_link(message)
    mails = [message]
    for round_ in range(3):
        for _ in range(5):
            # The page as it was before the last guess, with its button for a new TAN.
            token = await form_token(other_browser, link)
            await post_form(other_browser, link, {"tan": "0000 0000"})
        if round_ < 2:
            assert (await post_form(other_browser, link + "/new-tan",
                                    {"form_token": await form_token(other_browser, link)})).status == 303
            mails = await smtp.wait_for(len(mails) + 1)
    [view] = await services.invitations.list(practice.id)
    assert view.state == "locked"
    newest = await post_form(other_browser, link, {"tan": tan_in(mails[-1])}, headers=DE)
    assert newest.status == 410 and "daher ist diese Einladung gesperrt" in await newest.text()
    assert "Neuen Code senden" not in await (await other_browser.get(link, headers=DE)).text()
    refused = await post_form(other_browser, link + "/new-tan", {"form_token": token}, headers=DE)
    assert refused.status == 410 and "daher ist diese Einladung gesperrt" in await refused.text()
    await no_more_mail(smtp, 3)
    actions = await audit_actions(engine)
    assert actions.count("invitation_tan_voided") == 2 and actions.count("invitation_locked") == 1
    assert actions.count("invitation_tan_sent") == 2 and "guest_login" not in actions


async def test_another_device_gets_a_new_code_and_the_old_one_says_it_was_replaced(client, other_browser, services, engine, smtp, practice, clinician):
    message = await invited(client, smtp, practice)
    link, old_tan = mail_link(message), tan_in(message)
    [view] = await services.invitations.list(practice.id)
    room = f"/c/{view.consultation_id}"
    assert (await post_form(other_browser, link, {"tan": old_tan})).status == 303

    async with device(client) as tablet:
        page = await (await tablet.get(link, headers=DE)).text()
        assert "Mit der TAN dieser Einladung wurde bereits angemeldet" in page and "Neuen Code senden" in page
        asked = await post_form(tablet, link + "/new-tan", {"form_token": await form_token(tablet, link)})
        assert asked.status == 303 and asked.headers["Location"] == link + "?sent=1"
        notice = await (await tablet.get(asked.headers["Location"], headers=DE)).text()
        assert "Eine neue TAN ist unterwegs an g…@example.org" in notice
        second = (await smtp.wait_for(2))[1]
        assert second["To"] == "gast@example.org" and second["Subject"] == "Ihre neue TAN für die Videosprechstunde bei Praxis am Markt"
        new_tan = tan_in(second)
        assert new_tan != old_tan and code_in(second) == code_in(message)
        assert "Ihre bisherige TAN gilt nicht mehr." in mail_text(second)

        before = await state(engine)
        replaced = await post_form(tablet, link, {"tan": old_tan}, headers=DE)
        assert replaced.status == 401
        assert "Diese TAN wurde durch eine neuere ersetzt." in await replaced.text()
        assert await state(engine) == before  # no failure counted: whoever typed it had the mail
        entered = await post_form(tablet, link, {"tan": new_tan})
        assert entered.status == 303 and entered.headers["Location"] == room
        assert (await tablet.get(room, allow_redirects=False)).status == 200
    # The first device stays in: a new code ends no session.
    assert (await other_browser.get(room, allow_redirects=False)).status == 200
    actions = await audit_actions(engine)
    assert actions.count("guest_login") == 2 and "invitation_tan_sent" in actions


async def test_new_codes_are_rate_limited(client, other_browser, services, engine, smtp, practice, clinician):
    message = await invited(client, smtp, practice)
    new_tan = mail_link(message) + "/new-tan"
    for _ in range(3):
        once = {"form_token": await form_token(other_browser, mail_link(message))}
        assert (await post_form(other_browser, new_tan, once)).status == 303
    await smtp.wait_for(4)
    before = await state(engine)
    once = {"form_token": await form_token(other_browser, mail_link(message))}
    refused = await post_form(other_browser, new_tan, once, headers=DE)
    assert refused.status == 429
    assert "In der letzten Stunde wurden schon mehrere neue TANs verschickt" in await refused.text()
    await no_more_mail(smtp, 4)
    assert await state(engine) == before


async def test_a_new_code_sent_twice_from_one_page_makes_one_tan_and_one_mail(client, other_browser, services, engine, smtp, practice, clinician):
    """A double click or a reload of "Send a new code": the page's one-time token lets the
    first sending through; the second leads to the same notice and sends nothing."""
    message = await invited(client, smtp, practice)
    link = mail_link(message)
    once = {"form_token": await form_token(other_browser, link)}
    first = await post_form(other_browser, link + "/new-tan", once)
    again = await post_form(other_browser, link + "/new-tan", once)
    assert first.status == again.status == 303
    assert first.headers["Location"] == again.headers["Location"] == link + "?sent=1"
    await mail_settled(client.app)
    assert len(smtp.messages) == 2, [m["Subject"] for m in smtp.messages]
    fresh = tan_in(smtp.messages[1])
    entered = await post_form(other_browser, link, {"tan": fresh})
    assert entered.status == 303  # the one TAN mailed is the one that works
    assert (await audit_actions(engine)).count("invitation_tan_sent") == 1


async def test_no_new_code_by_mail_where_the_practice_hands_out_tans(client, other_browser, services, engine, smtp, practice, clinician):
    await services.invitations.set_tan_delivery(practice.id, "clinician")
    message = await invited(client, smtp, practice)
    page = await (await other_browser.get(mail_link(message), headers=DE)).text()
    assert "Neuen Code senden" not in page
    before = await state(engine)
    refused = await post_form(other_browser, mail_link(message) + "/new-tan", {}, headers=DE)
    assert refused.status == 409
    assert "Praxis am Markt gibt die TANs ihrer Einladungen selbst heraus." in await refused.text()
    assert await state(engine) == before


async def test_a_lapsed_guest_comes_back_to_the_tan_page_of_the_invitation(client, other_browser, services, engine, smtp, clock, settings, practice, clinician):
    message = await invited(client, smtp, practice)
    [view] = await services.invitations.list(practice.id)
    room = f"/c/{view.consultation_id}"
    await post_form(other_browser, mail_link(message), {"tan": tan_in(message)})
    clock.advance(minutes=settings.session_idle_minutes + 1)
    back = await other_browser.get(room, allow_redirects=False)
    assert back.status == 303 and back.headers["Location"] == "/guest/tan"  # never /login?next=…
    page = await (await other_browser.get("/guest/tan", headers=DE)).text()
    assert "Neuen Code senden" in page and "Praxis am Markt" in page
    asked = await post_form(other_browser, "/guest/tan/new-tan", {"form_token": await form_token(other_browser, "/guest/tan")})
    assert asked.status == 303 and asked.headers["Location"] == "/guest/tan?sent=1"
    fresh = tan_in((await smtp.wait_for(2))[1])
    entered = await post_form(other_browser, "/guest/tan", {"tan": fresh})
    assert entered.status == 303 and entered.headers["Location"] == room
    # The call page leads the same way back.
    clock.advance(minutes=settings.session_idle_minutes + 1)
    call = await other_browser.get(room + "/call", allow_redirects=False)
    assert call.headers["Location"] == "/guest/tan"
    # Someone who never came in by TAN on this browser still gets the password login.
    async with device(client) as stranger:
        login = await stranger.get(room, allow_redirects=False)
        assert login.headers["Location"] == f"/login?next={room}"
        assert (await stranger.get("/guest/tan", allow_redirects=False)).headers["Location"] == "/login"


async def test_an_open_waiting_page_keeps_the_session_alive(client, other_browser, services, engine, smtp, clock, practice, clinician):
    message = await invited(client, smtp, practice)
    [view] = await services.invitations.list(practice.id)
    room = f"/c/{view.consultation_id}"
    await post_form(other_browser, mail_link(message), {"tan": tan_in(message)})
    token = await csrf_token(other_browser, room)
    for _ in range(4):  # 80 minutes of waiting, a beat every 20
        clock.advance(minutes=20)
        beat = await other_browser.post(room + "/alive", headers={"X-CSRF-Token": token})
        assert beat.status == 204
    assert (await other_browser.get(room, allow_redirects=False)).status == 200
    clock.advance(minutes=31)
    assert (await other_browser.post(room + "/alive", headers={"X-CSRF-Token": token})).status == 401


async def test_the_guest_session_lasts_as_long_as_the_invitation(client, other_browser, services, engine, smtp, clock, settings, practice, clinician):
    plan = Appointment.parse("", clock.now() + timedelta(minutes=10), 20, now=clock.now())
    scheduled = await services.consultations.schedule(
        practice, clinician.user_id, plan, invitees=[Invitee.parse("gast@example.org", "Gabi Gast")])
    [message] = await smtp.wait_for(1)
    entered = await post_form(other_browser, mail_link(message), {"tan": tan_in(message)})
    assert entered.headers["Location"] == f"/c/{scheduled.consultation.id}"
    ends = scheduled.consultation.ends_at + timedelta(minutes=settings.tan_grace_minutes)
    async with engine.connect() as conn:
        [expires] = (await conn.execute(select(login_sessions.c.expires_at)
                                        .where(login_sessions.c.invitation_id.is_not(None)))).scalars()
    assert expires == ends
    # The cookie lives as long, so a browser closed and opened again on the device still has it.
    assert "Max-Age" in entered.headers["Set-Cookie"]
    # Moved by an hour, the consultation takes the guest's session with it.
    later = Appointment.parse("", plan.starts_at + timedelta(hours=1), 20, now=clock.now())
    await services.consultations.reschedule(practice, scheduled.consultation.id, later)
    async with engine.connect() as conn:
        [moved] = (await conn.execute(select(login_sessions.c.expires_at)
                                      .where(login_sessions.c.invitation_id.is_not(None)))).scalars()
    assert moved == ends + timedelta(hours=1)


async def test_the_mail_link_leads_a_signed_in_guest_back_to_the_waiting_room(client, other_browser, services, engine, smtp, practice, clinician):
    message = await invited(client, smtp, practice)
    [view] = await services.invitations.list(practice.id)
    await post_form(other_browser, mail_link(message), {"tan": tan_in(message)})
    again = await other_browser.get(mail_link(message), allow_redirects=False)
    assert again.status == 303 and again.headers["Location"] == f"/c/{view.consultation_id}"


async def test_an_early_visit_shows_the_local_time_and_uses_nothing_up(client, other_browser, services, engine, smtp, clock, practice, clinician):
    clock.current = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    plan = Appointment.parse("", datetime(2026, 12, 1, 13, 16, tzinfo=UTC), 20, now=clock.now())
    scheduled = await services.consultations.schedule(
        practice, clinician.user_id, plan, invitees=[Invitee.parse("gast@example.org", "Gabi Gast")])
    [message] = await smtp.wait_for(1)
    assert "Dienstag, 1. Dezember 2026, 14:16 Uhr" in mail_text(message)
    before = await state(engine)
    page = await (await other_browser.get(mail_link(message), headers=DE)).text()
    assert "Ihr Termin: Dienstag, 1. Dezember 2026, 14:16 Uhr" in page
    assert "Das Wartezimmer öffnet am Dienstag, 1. Dezember 2026, 14:01 Uhr" in page
    assert "UTC" not in page and "Europe/Berlin" not in page
    # "Add to calendar": the entry the mail carried (same UID), as a file to keep; and
    # the device check, on a page of its own.
    assert f'href="{mail_link(message)}/calendar.ics"' in page and 'href="/device-check"' in page
    download = await other_browser.get(mail_link(message) + "/calendar.ics")
    assert download.status == 200 and download.headers["Content-Type"] == "text/calendar; charset=utf-8"
    entry = Calendar.from_ical(await download.read())
    [event] = entry.walk("VEVENT")
    assert str(entry["method"]) == "PUBLISH" and str(event["summary"]) == "Videosprechstunde bei Praxis am Markt"
    assert event.decoded("dtstart") == datetime(2026, 12, 1, 13, 16, tzinfo=UTC)
    [attached] = [part for part in message.iter_attachments() if part.get_content_type() == "text/calendar"]
    assert str(event["uid"]) == str(Calendar.from_ical(attached.get_content()).walk("VEVENT")[0]["uid"])
    check = await (await other_browser.get("/device-check", headers=DE)).text()
    assert "Kamera und Mikrofon prüfen" in check and 'id="preview"' in check
    assert await state(engine) == before
    [view] = await services.invitations.list(practice.id)
    assert view.state == "pending"
    clock.current = datetime(2026, 12, 1, 13, 5, tzinfo=UTC)
    entered = await post_form(other_browser, mail_link(message), {"tan": tan_in(message)})
    assert entered.headers["Location"] == f"/c/{scheduled.consultation.id}"
    room = await (await other_browser.get(entered.headers["Location"], headers=DE)).text()
    assert "Bitte warten Sie" in room and "Ihr Termin: Dienstag, 1. Dezember 2026, 14:16 Uhr" in room


async def test_expired_and_withdrawn_invitations_say_what_happened(client, other_browser, services, engine, smtp, clock, settings, practice, clinician):
    clock.current = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)
    message = await invited(client, smtp, practice)
    clock.advance(hours=settings.tan_hours, seconds=1)
    expired = await other_browser.get(mail_link(message), headers=DE)
    assert expired.status == 410
    assert "Diese Einladung ist am Mittwoch, 2. Dezember 2026, 14:00 Uhr abgelaufen." in await expired.text()
    second = await invited(client, smtp, practice, count=2)
    newest = (await services.invitations.list(practice.id))[0]
    await post_form(client, f"/p/{practice.slug}/invitations/{newest.id}/revoke", {})
    withdrawn = await other_browser.get(mail_link(second), headers=DE)
    assert withdrawn.status == 410 and "Praxis am Markt hat diese Einladung zurückgezogen." in await withdrawn.text()


async def test_reloading_or_resending_the_invite_form_makes_one_invitation_and_one_mail(client, services, engine, smtp, practice, clinician):
    await log_in(client, "dr-berg")
    token = await form_token(client, f"/p/{practice.slug}/invitations")
    first, second = await asyncio.gather(invite(client, practice, token=token), invite(client, practice, token=token))
    assert first.status == second.status == 303
    assert first.headers["Location"] == second.headers["Location"]
    for _ in range(2):  # reloading "Invitation sent"
        assert (await client.get(first.headers["Location"])).status == 200
    assert (await invite(client, practice, token=token)).headers["Location"] == first.headers["Location"]
    await smtp.wait_for(1)
    await no_more_mail(smtp, 1)
    assert await count(engine, invitations) == 1 and await count(engine, consultations) == 1


async def test_resending_the_schedule_form_makes_one_consultation_and_one_mail(client, services, engine, smtp, clock, practice, clinician):
    await log_in(client, "dr-berg")
    token = await form_token(client, f"/p/{practice.slug}/consultations/new")
    day = (clock.now() + timedelta(days=2)).date().isoformat()
    form = {"title": "", "day": day, "time": "10:00", "duration": "20", "patient": "", "guest_email": "gast@example.org",
            "guest_name": "Gabi Gast", "guest_language": "de", "form_token": token}
    path = f"/p/{practice.slug}/consultations"
    first, second = await asyncio.gather(post_form(client, path, form), post_form(client, path, form))
    assert first.status == second.status == 303 and first.headers["Location"] == second.headers["Location"]
    assert (await client.get(first.headers["Location"])).status == 200
    third = await post_form(client, path, form)
    assert third.headers["Location"] == first.headers["Location"]
    await smtp.wait_for(1)
    await no_more_mail(smtp, 1)
    assert await count(engine, consultations) == 1 and await count(engine, invitations) == 1


async def test_resending_the_participant_form_adds_one_guest_and_one_mail(client, services, engine, smtp, clock, practice, clinician):
    plan = Appointment.parse("", clock.now() + timedelta(days=1), 20, now=clock.now())
    scheduled = await services.consultations.schedule(practice, clinician.user_id, plan)
    await log_in(client, "dr-berg")
    page = f"/p/{practice.slug}/consultations/{scheduled.consultation.id}"
    token = await form_token(client, page)
    form = {"patient": "", "guest_email": "gast@example.org", "guest_name": "", "guest_language": "de", "form_token": token}
    for _ in range(2):
        sent = await post_form(client, page + "/participants", form)
        assert sent.status == 303 and sent.headers["Location"] == page
    await smtp.wait_for(1)
    await no_more_mail(smtp, 1)
    assert await count(engine, participants) == 1


async def test_a_form_without_its_token_is_shown_again_and_makes_nothing(client, services, engine, smtp, practice, clinician):
    await log_in(client, "dr-berg")
    refused = await post_form(client, f"/p/{practice.slug}/invitations",
                              {"email": "gast@example.org", "display_name": "Gabi Gast", "language": "de"}, headers=DE)
    assert refused.status == 400
    page = await refused.text()
    assert "Dieses Formular war abgelaufen, daher wurde nichts gespeichert oder gesendet." in page
    assert 'value="gast@example.org"' in page and 'value="Gabi Gast"' in page
    await no_more_mail(smtp, 0)
    assert await count(engine, invitations) == 0 and await count(engine, consultations) == 0


async def test_an_invitation_without_consultation_shows_what_it_is(client, other_browser, services, engine, smtp, practice, clinician):
    """Invitations made before every invitation had a consultation."""
    await services.invitations.invite(practice, email="gast@example.org", invited_by=clinician.user_id)
    [message] = await smtp.wait_for(1)
    entered = await post_form(other_browser, mail_link(message), {"tan": tan_in(message)})
    assert entered.headers["Location"] == "/guest"
    page = await (await other_browser.get("/guest", headers=DE)).text()
    assert "Diese Einladung gehört zu keinem Termin." in page and "UTC" not in page


async def test_an_expired_instant_invitation_sent_again_is_valid_again(client, other_browser, services, engine, smtp, clock, settings, practice, clinician):
    await invited(client, smtp, practice)
    clock.advance(hours=settings.tan_hours, seconds=1)
    [view] = await services.invitations.list(practice.id)
    assert view.state == "expired"
    await log_in(client, "dr-berg")  # a day later, the clinician's session has ended too
    again = await reissue(client, practice, view.id)
    assert again.status == 303 and again.headers["Location"] == f"/p/{practice.slug}/invitations/{view.id}/sent"
    second = (await smtp.wait_for(2))[1]
    entered = await post_form(other_browser, mail_link(second), {"tan": tan_in(second)})
    assert entered.status == 303 and entered.headers["Location"] == f"/c/{view.consultation_id}"


async def test_send_again_clicked_twice_mails_one_new_tan_that_works(client, other_browser, services, smtp, practice, clinician):
    """A double click or a reload of "Send again with a new TAN": one new mail, and its TAN
    is not voided by a second one; the second answer leads to the same "sent" page."""
    first = await invited(client, smtp, practice)
    [view] = await services.invitations.list(practice.id)
    token = await form_token(client, f"/p/{practice.slug}/invitations")
    once = await reissue(client, practice, view.id, token=token)
    again = await reissue(client, practice, view.id, token=token)
    sent = f"/p/{practice.slug}/invitations/{view.id}/sent"
    assert once.status == again.status == 303 and once.headers["Location"] == again.headers["Location"] == sent
    await mail_settled(client.app)
    assert len(smtp.messages) == 2, [m["Subject"] for m in smtp.messages]
    second = smtp.messages[1]
    assert tan_in(second) != tan_in(first)
    entered = await post_form(other_browser, mail_link(second), {"tan": tan_in(second)})
    assert entered.status == 303 and entered.headers["Location"] == f"/c/{view.consultation_id}"
