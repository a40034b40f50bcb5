"""Data rights: a patient downloads what the service holds about them and deletes their
account; a practice admin downloads and deletes a patient or a staff member of the practice.
After a deletion no table holds the person's name, address or user name; the audit keeps
the fact."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from smartpractice.scheduling.consultations import Appointment
from smartpractice.storage.tables import (
    attendances,
    audit_log,
    calls,
    consultations,
    staff_invitations,
)
from tests.helpers import PASSWORD, add_member, log_in, post_form, second_browser, traces_of


@pytest.fixture
async def erika(app, services, engine, clock, practice, clinician) -> int:
    """A patient with a consultation (and its invitation mail) and a call she attended."""
    user_id = await add_member(app, practice, "patient", "erika")
    plan = Appointment.parse("Kontrolle", clock.now() + timedelta(minutes=10), 20, now=clock.now())
    booked = (await services.consultations.schedule(practice, clinician.user_id, plan, patient_ids=[user_id])).consultation
    async with engine.begin() as conn:
        call_id = (await conn.execute(insert(calls).values(
            practice_id=practice.id, consultation_id=booked.id, started_at=clock.now(), ended_at=clock.now()))).inserted_primary_key[0]
        await conn.execute(insert(attendances).values(call_id=call_id, user_id=user_id, role="patient",
                                                      client_kind="desktop", joined_at=clock.now(), left_at=clock.now()))
    return user_id


@pytest.fixture
async def admin(app, practice):
    await add_member(app, practice, "admin", "anna-admin")
    return "anna-admin"


async def audit_of(engine, user_id: int) -> list[tuple]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(audit_log.c.action, audit_log.c.actor_user_id).where(
            audit_log.c.object_kind == "user", audit_log.c.object_id == str(user_id)).order_by(audit_log.c.id))
        return [tuple(row) for row in rows]


async def test_a_patient_downloads_everything_held_about_them(client, services, engine, erika, practice, clinician):
    async with engine.begin() as conn:  # as the practice's own actions write it
        await services.audit.record(conn, practice.id, clinician.user_id, "patient_updated", "user", erika)
    await log_in(client, "erika")
    response = await client.get("/account/data")
    assert response.status == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="smartpractice-my-data.json"'
    data = await response.json()
    assert data["account"]["username"] == "erika" and data["account"]["email"] == "erika@example.org"
    assert [(p["practice"], p["role"]) for p in data["practices"]] == [(practice.name, "patient")]
    [consultation] = data["consultations"]
    assert consultation["title"] == "Kontrolle" and consultation["duration_minutes"] == 20
    [attendance] = data["call_attendances"]
    assert attendance["client_kind"] == "desktop" and attendance["consultation_id"] == consultation["id"]
    assert len(data["login_sessions"]) == 1
    [entry] = data["audit_entries"]
    assert (entry["action"], entry["practice"], entry["object_id"], entry["by_them"]) == (
        "patient_updated", practice.name, str(erika), False)


async def test_a_patient_deletes_their_account_and_nothing_about_them_is_left(client, erika, engine):
    await log_in(client, "erika")
    assert await traces_of(engine, "erika")
    refused = await post_form(client, "/account/delete", {"current_password": "wrong-" + PASSWORD, "confirm": "yes"})
    assert refused.status == 400
    assert "Ihr aktuelles Passwort ist nicht richtig." in await refused.text()
    unconfirmed = await post_form(client, "/account/delete", {"current_password": PASSWORD})
    assert unconfirmed.status == 400
    assert "Bitte bestätigen Sie, dass Ihr Konto gelöscht werden soll." in await unconfirmed.text()
    assert await traces_of(engine, "erika")

    deleted = await post_form(client, "/account/delete", {"current_password": PASSWORD, "confirm": "yes"})
    assert deleted.status == 200
    assert "Konto gelöscht" in await deleted.text()
    assert await traces_of(engine, "erika", "Erika") == []
    assert await audit_of(engine, erika) == [("account_deleted", None)]
    # Logged out: the account page asks for a login, and the login does not work any more.
    assert (await client.get("/account", allow_redirects=False)).status == 303
    assert (await log_in(client, "erika")).status == 401


async def test_staff_cannot_delete_their_own_account(client, clinician, engine):
    await log_in(client, "dr-berg")
    refused = await post_form(client, "/account/delete", {"current_password": PASSWORD, "confirm": "yes"})
    assert refused.status == 400
    assert "entfernt die Verwaltung der Praxis" in await refused.text()
    assert await traces_of(engine, "dr-berg")


async def test_the_admin_deletes_a_patient_whose_only_practice_it_is(client, other_browser, erika, admin, practice, engine):
    await log_in(other_browser, "erika")
    await log_in(client, admin)
    export = await client.get(f"/p/{practice.slug}/patients/{erika}/data")
    assert export.status == 200
    assert (await export.json())["account"]["username"] == "erika"
    # The admin's copy of Erika's data is on record, with who took it.
    [(action, exporter)] = await audit_of(engine, erika)
    assert action == "personal_data_exported" and exporter is not None
    response = await post_form(client, f"/p/{practice.slug}/patients/{erika}/delete", {"confirm": "yes"})
    assert response.status == 303
    listed = await client.get(response.headers["Location"])
    assert "Die Daten der Person wurden gelöscht." in await listed.text()
    assert await traces_of(engine, "erika", "Erika") == []
    admin_id = (await (await client.get("/account/data")).json())["account"]
    assert admin_id["username"] == admin
    assert await audit_of(engine, erika) == [("personal_data_exported", exporter), ("patient_deleted", exporter)]
    # Erika's session ended with her account.
    assert (await other_browser.get("/account", allow_redirects=False)).status == 303


async def test_a_patient_of_two_practices_loses_only_what_one_of_them_held(client, app, services, clock, erika, admin,
                                                                        practice, engine):
    other = (await services.practices.create("Praxis am See", admin_email="see@example.org", admin_username="see-admin")).practice
    see_doctor = await add_member(app, other, "clinician", "dr-see")
    from smartpractice.storage import practices as practice_store

    async with engine.begin() as conn:
        await practice_store.add_member(conn, practice_id=other.id, user_id=erika, role="patient", now=clock.now())
    plan = Appointment.parse("Nachsorge", clock.now() + timedelta(days=2), 20, now=clock.now())
    await services.consultations.schedule(other, see_doctor, plan, patient_ids=[erika])

    await log_in(client, admin)
    scoped = await (await client.get(f"/p/{practice.slug}/patients/{erika}/data")).json()
    assert [c["title"] for c in scoped["consultations"]] == ["Kontrolle"]
    assert [p["practice"] for p in scoped["practices"]] == [practice.name]
    assert "login_sessions" not in scoped
    await post_form(client, f"/p/{practice.slug}/patients/{erika}/delete", {"confirm": "yes"})

    async with second_browser(client) as erika_browser:
        assert (await log_in(erika_browser, "erika")).status == 303
        left = await (await erika_browser.get("/account/data")).json()
    assert [p["practice"] for p in left["practices"]] == ["Praxis am See"]
    assert [c["title"] for c in left["consultations"]] == ["Nachsorge"]
    assert left["call_attendances"] == []
    assert (await client.get(f"/p/{practice.slug}/patients/{erika}")).status == 404


async def test_only_the_admin_may_export_or_delete_a_patient(client, erika, clinician, practice, engine):
    await log_in(client, "dr-berg")
    assert (await client.get(f"/p/{practice.slug}/patients/{erika}/data")).status == 404
    assert (await post_form(client, f"/p/{practice.slug}/patients/{erika}/delete", {"confirm": "yes"})).status == 404
    assert await traces_of(engine, "erika")


async def test_a_clinician_downloads_their_data_with_the_consultations_they_hold(client, erika, practice):
    await log_in(client, "dr-berg")
    data = await (await client.get("/account/data")).json()
    assert data["account"]["username"] == "dr-berg"
    assert [(p["practice"], p["role"], p["treats_patients"]) for p in data["practices"]] == [
        (practice.name, "clinician", True)]
    page = await (await client.get("/account/data?view=page")).text()
    assert "Behandelt Patientinnen und Patienten" in page and "<td>ja</td>" in page and "True" not in page
    assert data["consultations"] == []
    [held] = data["consultations_held"]
    assert held["title"] == "Kontrolle" and held["practice"] == practice.name


async def test_the_same_data_as_a_readable_page_in_german(client, erika, practice):
    await log_in(client, "erika")
    page = await client.get("/account/data?view=page")
    assert page.status == 200 and page.content_type == "text/html"
    text = await page.text()
    for heading in ("<h2>Konto</h2>", "<h2>Praxen</h2>", "<h2>Sprechstunden</h2>", "<h2>Gespräche, an denen Sie teilnahmen</h2>"):
        assert heading in text, heading
    assert "<th>Benutzername</th>" in text and "<td>erika@example.org</td>" in text
    assert "<td>Kontrolle</td>" in text and f"<td>{practice.name}</td>" in text


async def test_the_admin_exports_and_deletes_a_clinician_and_nothing_about_them_is_left(
        client, other_browser, services, engine, clock, erika, admin, clinician, practice):
    berg = clinician.user_id
    async with engine.begin() as conn:  # he joined by a staff invitation, which keeps his address
        await conn.execute(insert(staff_invitations).values(
            practice_id=practice.id, email="dr-berg@example.org", role="clinician", token_hash="b" * 64,
            created_at=clock.now(), expires_at=clock.now() + timedelta(days=7), accepted_at=clock.now()))
    seats_before = (await services.plans.usage(practice.id)).used
    await log_in(other_browser, "dr-berg")
    await log_in(client, admin)
    staff_page = await (await client.get(f"/p/{practice.slug}/staff")).text()
    assert f"/p/{practice.slug}/staff/{berg}/delete" in staff_page and "Mitarbeiter/in löschen" in staff_page

    export = await client.get(f"/p/{practice.slug}/staff/{berg}/data")
    assert export.status == 200
    assert export.headers["Content-Disposition"] == f'attachment; filename="staff-{berg}.json"'
    data = await export.json()
    assert data["account"]["username"] == "dr-berg"
    assert [c["title"] for c in data["consultations_held"]] == ["Kontrolle"]
    assert [action for action, _ in await audit_of(engine, berg)][-1] == "personal_data_exported"

    unconfirmed = await post_form(client, f"/p/{practice.slug}/staff/{berg}/delete", {})
    assert unconfirmed.status == 400
    assert "Bitte bestätigen Sie, dass die Daten der Mitarbeiterin oder des Mitarbeiters gelöscht werden sollen." \
        in await unconfirmed.text()
    assert await traces_of(engine, "dr-berg")

    deleted = await post_form(client, f"/p/{practice.slug}/staff/{berg}/delete", {"confirm": "yes"})
    assert deleted.status == 303
    assert "Die Daten der Mitarbeiterin oder des Mitarbeiters wurden gelöscht." in await (
        await client.get(deleted.headers["Location"])).text()
    assert await traces_of(engine, "dr-berg", "Dr Berg") == []
    assert (await services.plans.usage(practice.id)).used == seats_before - 1
    # The audit keeps the fact: who deleted whom, as a number; his own entries lose their actor.
    assert ("staff_deleted", True) in [(action, actor is not None) for action, actor in await audit_of(engine, berg)]
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).where(audit_log.c.actor_user_id == berg))).scalar_one() == 0
        # The consultation he held stays with the practice, without him.
        assert (await conn.execute(select(consultations.c.clinician_id))).scalars().all() == [None]
    # His session ended with his account, and he cannot log in again.
    assert (await other_browser.get("/account", allow_redirects=False)).status == 303
    assert (await log_in(other_browser, "dr-berg")).status == 401


async def test_the_last_admin_cannot_delete_themselves_and_only_an_admin_deletes_staff(
        client, other_browser, services, engine, admin, clinician, practice):
    await log_in(other_browser, "dr-berg")
    staff = {member.username: member.user_id for member in await services.staff.list(practice.id)}
    chef, anna = staff["chef"], staff[admin]
    assert (await post_form(other_browser, f"/p/{practice.slug}/staff/{chef}/delete", {"confirm": "yes"})).status == 404
    assert (await other_browser.get(f"/p/{practice.slug}/staff/{chef}/data")).status == 404

    await log_in(client, admin)
    assert (await post_form(client, f"/p/{practice.slug}/staff/{chef}/delete", {"confirm": "yes"})).status == 303
    refused = await post_form(client, f"/p/{practice.slug}/staff/{anna}/delete", {"confirm": "yes"},
                              headers={"Accept-Language": "en"})
    assert refused.status == 400
    assert "A practice needs at least one active admin. Make someone else an admin first." in await refused.text()
    assert await traces_of(engine, admin)
    english = await (await client.get(f"/p/{practice.slug}/staff", headers={"Accept-Language": "en"})).text()
    assert "Delete staff member" in english and "Download data (JSON)" in english
    assert (await client.get(f"/p/{practice.slug}/staff/999999/data")).status == 404


async def test_a_clinician_of_two_practices_loses_only_what_one_of_them_held(
        client, app, services, clock, engine, erika, admin, clinician, practice):
    other = (await services.practices.create("Praxis am See", admin_email="see@example.org",
                                             admin_username="see-admin")).practice
    from smartpractice.storage import practices as practice_store

    async with engine.begin() as conn:
        await practice_store.add_member(conn, practice_id=other.id, user_id=clinician.user_id, role="clinician",
                                        now=clock.now())
    async with second_browser(client) as berg_browser:
        await log_in(berg_browser, "dr-berg")
        await log_in(client, admin)
        deleted = await post_form(client, f"/p/{practice.slug}/staff/{clinician.user_id}/delete", {"confirm": "yes"})
        assert deleted.status == 303
        # Logged out everywhere; he logs in again for the other practice.
        assert (await berg_browser.get("/account", allow_redirects=False)).status == 303
        assert (await log_in(berg_browser, "dr-berg")).status == 303
        left = await (await berg_browser.get("/account/data")).json()
    assert [p["practice"] for p in left["practices"]] == ["Praxis am See"]
    assert left["consultations_held"] == []
    assert (await client.get(f"/p/{practice.slug}/staff/{clinician.user_id}/data")).status == 404
