"""In real browsers, at desktop and phone size, the TAN path as a guest and a clinician click it: an invitation without
a planned time becomes a consultation whose waiting room the clinician watches; the guest
comes in by the mail's link or with the invitation code on the login page, leaves and
comes back, gets a new code on a second device, visits days early, waits long; and the
invite and schedule forms make one record and one mail however they are clicked."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import unused_port
from icalendar import Calendar
from sqlalchemy import func, select

from smartpractice.keys import engine_key, services_key
from smartpractice.onboarding.invitations import Invitee
from smartpractice.scheduling.consultations import Appointment
from smartpractice.storage.tables import audit_log, consultations, invitations
from tests.call_pages import DOCTOR, GUEST, enter_call, until_every_tile_plays
from tests.helpers import (
    DESKTOP,
    PHONE,
    SlowLine,
    add_member,
    logged_in,
    mail_settled,
    mail_text,
    make_app,
    make_settings,
    needs_chromium,
    send_twice,
)

pytestmark = needs_chromium


# The device check works: the own camera's picture plays and the microphone's level moves.
PREVIEW_AND_LEVEL = """() => {
  const video = document.getElementById("preview");
  return video.getVideoPlaybackQuality().totalVideoFrames > 10 && document.getElementById("mic-level").value > 0;
}"""


def tan_of(message) -> str:
    return re.search(r"\b(\d{4} \d{4})\b", mail_text(message)).group(1)


def link_and_tan(message) -> tuple[str, str]:
    link = re.search(r"(http://127\.0\.0\.1:\d+/invitation/\S+)", mail_text(message)).group(1)
    return link, tan_of(message)


def code_of(message) -> str:
    return re.search(r"\b([A-Z2-9]{4}-[A-Z2-9]{4})\b", mail_text(message)).group(1)


async def lindenhof(server):
    """Praxis Lindenhof with Dr. Sommer: (services, practice, her id, base URL)."""
    services = server.app[services_key]
    practice = (await services.practices.create("Praxis Lindenhof", admin_email="linde@example.org",
                                                admin_username="linde")).practice
    doctor = await add_member(server.app, practice, "clinician", "dr-sommer")
    return services, practice, doctor, str(server.make_url("")).rstrip("/")


async def guest_page(browser, size=DESKTOP):
    context = await browser.new_context(locale="de-DE", **size)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page, errors


async def enter_with_tan(page, link: str, tan: str, consultation_id: int) -> None:
    await page.goto(link)
    await page.fill("#tan", tan)
    await page.click("form:has(#tan) button[type=submit]")
    await page.wait_for_url(f"**/c/{consultation_id}")
    await page.wait_for_selector("#room[data-state=waiting]")


async def rows(server, table) -> int:
    async with server.app[engine_key].connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def exactly(server, smtp, expected: int) -> None:
    """The mails expected, and once the sender has found nothing more due, not one more."""
    await smtp.wait_for(expected)
    await mail_settled(server.app)
    assert len(smtp.messages) == expected, [m["Subject"] for m in smtp.messages]


@pytest.fixture
async def clocked_server(aiohttp_server, tmp_path, database_url, smtp, clock):
    """live_server with the test's FrozenClock, for journeys across days."""
    port = unused_port()
    settings = make_settings(tmp_path, database_url, BASE_URL=f"http://127.0.0.1:{port}", SMTP_HOST="127.0.0.1",
                             SMTP_PORT=str(smtp.controller.port), SMTP_TLS="none")
    return await aiohttp_server(make_app(settings, clock=clock), port=port)


@pytest.fixture
async def slow_forms_server(aiohttp_server, tmp_path, database_url, smtp):
    """live_server whose invite, schedule and add-participant forms are handled at once but
    answered a second and a half later, as on a slow line: the second click comes after the
    first sending did its work, and the browser shows the second's answer. (Held back
    before handling, the first sending would be cancelled when the browser drops it, and
    the second would be the only one.)"""
    port = unused_port()
    settings = make_settings(tmp_path, database_url, BASE_URL=f"http://127.0.0.1:{port}", SMTP_HOST="127.0.0.1",
                             SMTP_PORT=str(smtp.controller.port), SMTP_TLS="none")
    app = make_app(settings)
    line = SlowLine(1.5, lambda path: path.endswith(("/invitations", "/consultations", "/participants")))
    app.middlewares.append(line.middleware)
    server = await aiohttp_server(app, port=port)
    server.line = line
    return server


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_adhoc_tan_invitation_to_waiting_room_admitted_into_the_call(live_server, browser, smtp, size):
    services, practice, _, base = await lindenhof(live_server)
    doctor, doctor_errors = await logged_in(browser, base, "dr-sommer", live_server.app)
    await doctor.click(f"a[href='/p/{practice.slug}/invitations']")
    await doctor.fill("#email", "gabi@example.org")
    await doctor.fill("#display_name", "Gabi Gast")
    await doctor.click(f"form[action='/p/{practice.slug}/invitations'] button[type=submit]")
    await doctor.wait_for_url(f"**/p/{practice.slug}/invitations/*/sent")
    assert "Einladung gesendet" in await doctor.inner_text("h1")
    await doctor.wait_for_selector("#waiting-room[data-state=live]")

    [message] = await smtp.wait_for(1)
    link, tan = link_and_tan(message)
    [view] = await services.invitations.list(practice.id)
    guest, guest_errors = await guest_page(browser, size)
    await guest.goto(link)
    assert "Anmeldung mit TAN" in await guest.inner_text("h1")
    await guest.fill("#tan", tan)
    await guest.click("form:has(#tan) button[type=submit]")
    await guest.wait_for_url(f"**/c/{view.consultation_id}")
    await guest.wait_for_selector("#room[data-state=waiting]")

    arrival = doctor.locator(".waiting-person", has_text="Gabi Gast")
    await arrival.wait_for()
    await arrival.get_by_role("button", name="Hereinlassen", exact=True).click()
    await guest.wait_for_url(f"**/c/{view.consultation_id}/call")
    await guest.wait_for_selector("#call[data-state=ready]")
    # In the call: each sees and hears the other, tile by tile.
    await guest.click("#join")
    await guest.wait_for_selector("#call[data-state=in_call]")
    await enter_call(doctor, base, view.consultation_id)
    await until_every_tile_plays({DOCTOR: doctor, GUEST: guest})
    assert doctor_errors == [] and guest_errors == []


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_log_in_with_code_and_tan_from_the_login_page(live_server, browser, smtp, size):
    services, practice, doctor_id, base = await lindenhof(live_server)
    new = await services.consultations.invite_now(practice, doctor_id, Invitee.parse("gabi@example.org", "Gabi Gast"))
    [message] = await smtp.wait_for(1)
    _, tan = link_and_tan(message)
    guest, errors = await guest_page(browser, size)
    await guest.goto(base + "/login")
    await guest.fill("#code", code_of(message).lower())
    await guest.fill("#login-tan", tan)
    await guest.click("#tan-login button[type=submit]")
    await guest.wait_for_url(f"**/c/{new.invitation.consultation_id}")
    await guest.wait_for_selector("#room[data-state=waiting]")
    assert errors == []


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_the_guest_leaves_and_comes_back_on_the_same_device(live_server, browser, smtp, size):
    services, practice, doctor_id, base = await lindenhof(live_server)
    new = await services.consultations.invite_now(practice, doctor_id, Invitee.parse("gabi@example.org", "Gabi Gast"))
    consultation_id = new.invitation.consultation_id
    link, tan = link_and_tan((await smtp.wait_for(1))[0])
    doctor, _ = await logged_in(browser, base, "dr-sommer", live_server.app)
    guest, errors = await guest_page(browser, size)
    await enter_with_tan(guest, link, tan, consultation_id)
    await doctor.locator(".waiting-person", has_text="Gabi Gast").wait_for()

    # The tab is closed: the clinician's list empties. The mail's link, clicked again on
    # the same device, leads straight back into the waiting room, with no TAN asked.
    context = guest.context
    await guest.close()
    await doctor.wait_for_selector("#waiting-empty", state="visible")
    guest = await context.new_page()
    await guest.goto(link)
    await guest.wait_for_url(f"**/c/{consultation_id}")
    await guest.wait_for_selector("#room[data-state=waiting]")
    await doctor.locator(".waiting-person", has_text="Gabi Gast").get_by_role("button", name="Hereinlassen", exact=True).click()
    await guest.wait_for_url(f"**/c/{consultation_id}/call")
    await guest.wait_for_selector("#call[data-state=ready]")
    assert errors == []


@pytest.mark.parametrize(("first", "second"), [(DESKTOP, PHONE), (PHONE, DESKTOP)],
                         ids=["desktop-then-phone", "phone-then-desktop"])
async def test_a_second_device_gets_a_fresh_code_from_the_invitation_page(live_server, browser, smtp, first, second):
    services, practice, doctor_id, base = await lindenhof(live_server)
    new = await services.consultations.invite_now(practice, doctor_id, Invitee.parse("gabi@example.org", "Gabi Gast"))
    consultation_id = new.invitation.consultation_id
    link, tan = link_and_tan((await smtp.wait_for(1))[0])
    laptop, laptop_errors = await guest_page(browser, first)
    await enter_with_tan(laptop, link, tan, consultation_id)

    phone, phone_errors = await guest_page(browser, second)
    await phone.goto(link)
    assert "bereits angemeldet" in await phone.inner_text("#used")
    await phone.click("#new-tan button[type=submit]")
    await phone.wait_for_url("**?sent=1")
    assert "Eine neue TAN ist unterwegs" in await phone.inner_text("#sent")
    fresh = tan_of((await smtp.wait_for(2))[1])
    assert fresh != tan
    await phone.fill("#tan", fresh)
    await phone.click("form:has(#tan) button[type=submit]")
    await phone.wait_for_url(f"**/c/{consultation_id}")
    await phone.wait_for_selector("#room[data-state=waiting]")
    # The laptop is still in.
    await laptop.reload()
    await laptop.wait_for_selector("#room[data-state=waiting]")
    assert laptop_errors == [] and phone_errors == []


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_five_wrong_tans_void_the_code_and_a_fresh_one_lets_the_guest_in(live_server, browser, smtp, size):
    """Someone who has the invitation code types five wrong TANs; the guest, opening her
    mail's link, is told her TAN no longer works, has a new one sent and comes in with it."""
    services, practice, doctor_id, base = await lindenhof(live_server)
    new = await services.consultations.invite_now(practice, doctor_id, Invitee.parse("gabi@example.org", "Gabi Gast"))
    consultation_id = new.invitation.consultation_id
    message = (await smtp.wait_for(1))[0]
    link, tan = link_and_tan(message)
    stranger, _ = await guest_page(browser, DESKTOP if size is PHONE else PHONE)
    for _ in range(5):
        await stranger.goto(base + "/login")
        await stranger.fill("#code", code_of(message))
        await stranger.fill("#login-tan", "1234 5678" if tan != "1234 5678" else "8765 4321")
        await stranger.click("#tan-login button[type=submit]")
        await stranger.wait_for_selector("[role=alert]")
    assert "gilt diese TAN nicht mehr" in await stranger.inner_text("[role=alert]")

    guest, errors = await guest_page(browser, size)
    await guest.goto(link)
    assert "Die Einladung selbst gilt weiter" in await guest.inner_text("#voided")
    assert await guest.locator("#tan").count() == 0  # no field for a TAN that cannot work
    await guest.click("#new-tan button[type=submit]")
    await guest.wait_for_url("**?sent=1")
    assert "Eine neue TAN ist unterwegs an g…@example.org" in await guest.inner_text("#sent")
    fresh = (await smtp.wait_for(2))[1]
    assert fresh["To"] == "gabi@example.org" and tan_of(fresh) != tan
    await guest.fill("#tan", tan_of(fresh))
    await guest.click("form:has(#tan) button[type=submit]")
    await guest.wait_for_url(f"**/c/{consultation_id}")
    await guest.wait_for_selector("#room[data-state=waiting]")
    await exactly(live_server, smtp, 2)
    async with live_server.app[engine_key].connect() as conn:
        actions = list((await conn.execute(select(audit_log.c.action).where(audit_log.c.object_kind == "invitation")
                                           .order_by(audit_log.c.id))).scalars())
    assert actions == ["invitation_sent", "invitation_tan_voided", "invitation_tan_sent", "guest_login"]
    assert errors == []


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_an_early_visit_then_entry_on_the_day(clocked_server, browser, smtp, clock, size):
    clock.current = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    services, practice, doctor_id, base = await lindenhof(clocked_server)
    plan = Appointment.parse("", datetime(2026, 12, 1, 13, 16, tzinfo=UTC), 20, now=clock.now())
    scheduled = await services.consultations.schedule(
        practice, doctor_id, plan, invitees=[Invitee.parse("gabi@example.org", "Gabi Gast")])
    link, tan = link_and_tan((await smtp.wait_for(1))[0])

    early, errors = await guest_page(browser, size)
    await early.goto(link)
    assert "Dienstag, 1. Dezember 2026, 14:16 Uhr" in await early.inner_text("#appointment")
    assert "UTC" not in await early.inner_text("main")
    # Days ahead, the guest tries camera and microphone and puts the date in the calendar.
    async with early.expect_popup() as opened:
        await early.click("#try-devices a")
    check = await opened.value
    await check.wait_for_selector("#device-check[data-state=ready]")
    await check.wait_for_function(PREVIEW_AND_LEVEL, timeout=15_000)
    async with early.expect_download() as downloaded:
        await early.click("#add-to-calendar")
    saved = Path(await (await downloaded.value).path())
    entry = Calendar.from_ical(await asyncio.to_thread(saved.read_bytes))
    assert entry.walk("VEVENT")[0].decoded("dtstart") == datetime(2026, 12, 1, 13, 16, tzinfo=UTC)
    await early.context.close()

    clock.current = datetime(2026, 12, 1, 13, 5, tzinfo=UTC)
    on_the_day, later_errors = await guest_page(browser, size)
    await enter_with_tan(on_the_day, link, tan, scheduled.consultation.id)
    assert errors == [] and later_errors == []


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_a_guest_waiting_forty_minutes_is_still_admitted(clocked_server, browser, smtp, clock, size):
    services, practice, doctor_id, base = await lindenhof(clocked_server)
    new = await services.consultations.invite_now(practice, doctor_id, Invitee.parse("gabi@example.org", "Gabi Gast"))
    consultation_id = new.invitation.consultation_id
    link, tan = link_and_tan((await smtp.wait_for(1))[0])
    guest, errors = await guest_page(browser, size)
    await guest.clock.install()
    await enter_with_tan(guest, link, tan, consultation_id)
    # Forty minutes on the server's clock; the page's own timers run as long, so its beat
    # keeps the session (idle timeout 30 minutes) alive.
    for _ in range(4):
        clock.advance(minutes=10)
        async with guest.expect_response(f"**/c/{consultation_id}/alive") as beat:
            await guest.clock.run_for(10 * 60 * 1000)
        assert (await beat.value).status == 204
    doctor, _ = await logged_in(browser, base, "dr-sommer", clocked_server.app)
    await doctor.locator(".waiting-person", has_text="Gabi Gast").get_by_role("button", name="Hereinlassen", exact=True).click()
    await guest.wait_for_url(f"**/c/{consultation_id}/call")
    await guest.wait_for_selector("#call[data-state=ready]")
    assert errors == []


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_a_guest_forty_minutes_in_the_call_stays_signed_in(clocked_server, browser, smtp, clock, size):
    """The call page beats as the waiting page does: after forty minutes (idle timeout 30)
    the guest's session still holds, so a reload or a reconnecting socket gets back in."""
    services, practice, doctor_id, base = await lindenhof(clocked_server)
    new = await services.consultations.invite_now(practice, doctor_id, Invitee.parse("gabi@example.org", "Gabi Gast"))
    consultation_id = new.invitation.consultation_id
    link, tan = link_and_tan((await smtp.wait_for(1))[0])
    guest, errors = await guest_page(browser, size)
    await guest.clock.install()
    await enter_with_tan(guest, link, tan, consultation_id)
    await services.waiting_room.state.admit(practice.id, consultation_id, f"i{new.invitation.id}")
    await guest.goto(f"{base}/c/{consultation_id}/call")
    await guest.wait_for_selector("#call[data-state=ready]")
    for _ in range(4):
        clock.advance(minutes=10)
        async with guest.expect_response(f"**/c/{consultation_id}/alive") as beat:
            await guest.clock.run_for(10 * 60 * 1000)
        assert (await beat.value).status == 204
    await guest.reload()
    await guest.wait_for_selector("#call[data-state=ready]")
    assert guest.url.endswith(f"/c/{consultation_id}/call") and errors == []


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_double_click_and_reload_on_the_invite_form_make_one_invitation(slow_forms_server, browser, smtp, size):
    services, practice, _, base = await lindenhof(slow_forms_server)
    doctor, errors = await logged_in(browser, base, "dr-sommer", slow_forms_server.app, device=size)
    await doctor.goto(f"{base}/p/{practice.slug}/invitations")
    await doctor.fill("#email", "gabi@example.org")
    await send_twice(doctor, f"form[action='/p/{practice.slug}/invitations'] button[type=submit]",
                     slow_forms_server.line)
    # The second click aborted the first page load: what the browser shows is the second
    # sending's answer, which leads to the invitation the first one made.
    await doctor.wait_for_selector("#sent[data-invitation]", timeout=15000)
    assert re.search(rf"/p/{practice.slug}/invitations/\d+/sent$", doctor.url)
    await doctor.reload()
    await doctor.wait_for_selector("#sent")
    assert slow_forms_server.line.posts == [f"/p/{practice.slug}/invitations"] * 2
    await exactly(slow_forms_server, smtp, 1)
    assert await rows(slow_forms_server, invitations) == 1 and await rows(slow_forms_server, consultations) == 1
    assert errors == []


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_double_click_and_reload_on_the_schedule_form_make_one_consultation(slow_forms_server, browser, smtp, size):
    services, practice, _, base = await lindenhof(slow_forms_server)
    doctor, errors = await logged_in(browser, base, "dr-sommer", slow_forms_server.app, device=size)
    await doctor.goto(f"{base}/p/{practice.slug}/consultations/new")
    await doctor.fill("#day", (datetime.now(UTC) + timedelta(days=2)).date().isoformat())
    await doctor.fill("#guest_email", "gabi@example.org")
    await send_twice(doctor, f"form[action='/p/{practice.slug}/consultations'] button[type=submit]",
                     slow_forms_server.line)
    await doctor.wait_for_selector("#state", timeout=15000)
    assert re.search(rf"/p/{practice.slug}/consultations/\d+$", doctor.url)
    await doctor.reload()
    await doctor.wait_for_selector("#state")
    assert slow_forms_server.line.posts == [f"/p/{practice.slug}/consultations"] * 2
    await exactly(slow_forms_server, smtp, 1)
    assert await rows(slow_forms_server, consultations) == 1 and await rows(slow_forms_server, invitations) == 1
    assert errors == []


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_double_click_and_reload_on_the_add_participant_form_make_one_invitation(slow_forms_server, browser,
                                                                                      smtp, size):
    services, practice, doctor_id, base = await lindenhof(slow_forms_server)
    plan = Appointment.parse("", datetime.now(UTC) + timedelta(days=2), 20, now=datetime.now(UTC))
    consultation = (await services.consultations.schedule(practice, doctor_id, plan)).consultation
    doctor, errors = await logged_in(browser, base, "dr-sommer", slow_forms_server.app, device=size)
    path = f"/p/{practice.slug}/consultations/{consultation.id}"
    await doctor.goto(base + path)
    await doctor.fill("#guest_email", "gabi@example.org")
    await send_twice(doctor, f"form[action='{path}/participants'] button[type=submit]",
                     slow_forms_server.line)
    await doctor.wait_for_selector("#state", timeout=15000)
    assert doctor.url.endswith(path)
    await doctor.reload()
    await doctor.wait_for_selector("#state")
    assert slow_forms_server.line.posts == [f"{path}/participants"] * 2
    await exactly(slow_forms_server, smtp, 1)
    assert await rows(slow_forms_server, invitations) == 1 and await rows(slow_forms_server, consultations) == 1
    assert errors == []
