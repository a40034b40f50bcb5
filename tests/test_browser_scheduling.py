"""Scheduling in a real browser: the patient field searches a practice's patients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from smartpractice.keys import services_key
from tests.helpers import add_member, logged_in, needs_chromium

pytestmark = needs_chromium

VISIBLE = "() => [...document.querySelectorAll('#patient option')].filter((o) => o.value && !o.hidden).map((o) => o.textContent)"


async def test_the_patient_field_finds_a_patient_by_part_of_a_name(live_server, browser):
    app = live_server.app
    services = app[services_key]
    practice = (await services.practices.create("Praxis Lindenhof", admin_email="linde@example.org",
                                                admin_username="linde")).practice
    await add_member(app, practice, "clinician", "dr-sommer")
    ids = {username: await add_member(app, practice, "patient", username)
           for username in ("erika-mustermann", "max-meier", "erik-schmidt")}
    base = str(live_server.make_url("")).rstrip("/")
    doctor, errors = await logged_in(browser, base, "dr-sommer", app)
    await doctor.goto(f"{base}/p/{practice.slug}/consultations/new")
    search = doctor.locator("#patient-search")
    await search.fill("eri")
    assert sorted(await doctor.evaluate(VISIBLE)) == ["Erik Schmidt (erik-schmidt)", "Erika Mustermann (erika-mustermann)"]
    assert await doctor.input_value("#patient") == ""  # two match: nothing chosen for her
    await search.fill("SCHMI")  # any case; one left, and it is chosen
    assert await doctor.evaluate(VISIBLE) == ["Erik Schmidt (erik-schmidt)"]
    assert await doctor.input_value("#patient") == str(ids["erik-schmidt"])
    await doctor.fill("#day", (datetime.now(UTC) + timedelta(days=2)).date().isoformat())
    await doctor.click(f"form[action='/p/{practice.slug}/consultations'] button[type=submit]")
    await doctor.wait_for_selector("#state")
    view = await services.consultations.get(practice.id, int(doctor.url.rsplit("/", 1)[1]))
    assert [p.user_id for p in view.participants] == [ids["erik-schmidt"]]
    assert errors == []
