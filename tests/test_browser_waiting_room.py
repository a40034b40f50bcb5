"""In real browsers: a patient waits, the clinician sees the arrival live and admits them."""

from __future__ import annotations

from datetime import timedelta

from smartpractice.keys import services_key
from smartpractice.scheduling.consultations import Appointment
from tests.helpers import add_member, logged_in, needs_chromium

pytestmark = needs_chromium


async def test_patient_waits_and_the_clinician_admits_them_into_the_call(live_server, browser):
    services = live_server.app[services_key]
    practice = (await services.practices.create("Praxis Lindenhof", admin_email="linde@example.org", admin_username="linde")).practice
    clinician_id = await add_member(live_server.app, practice, "clinician", "dr-sommer")
    erika = await add_member(live_server.app, practice, "patient", "erika")
    plan = Appointment.parse("Kontrolle", services.clock.now() + timedelta(minutes=10), 20, now=services.clock.now())
    consultation = (await services.consultations.schedule(practice, clinician_id, plan, patient_ids=[erika])).consultation
    base = str(live_server.make_url("")).rstrip("/")

    clinician, clinician_errors = await logged_in(browser, base, "dr-sommer", live_server.app)
    await clinician.wait_for_selector("#waiting-room[data-state=live]")
    assert await clinician.is_visible("#waiting-empty")

    patient, patient_errors = await logged_in(browser, base, "erika")
    await patient.click(f"a[href='/c/{consultation.id}']")
    await patient.wait_for_selector("#room[data-state=waiting]")
    assert "Bitte warten Sie" in await patient.inner_text("#status")

    arrival = clinician.locator(".waiting-person", has_text="Erika")
    await arrival.wait_for()
    assert "Kontrolle" in await arrival.inner_text()
    await arrival.get_by_role("button", name="Hereinlassen", exact=True).click()

    await patient.wait_for_url(f"**/c/{consultation.id}/call")
    await patient.wait_for_selector("#call[data-state=ready]")
    assert "Kamera und Mikrofon prüfen" in await patient.inner_text("#device-check h1")
    await clinician.wait_for_selector("#waiting-empty", state="visible")
    assert clinician_errors == [] and patient_errors == []
