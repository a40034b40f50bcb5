"""A practice's export: its admin downloads everything the service holds for the practice
from the settings page, the operator writes the same document from the command line. It
holds every kind of record of that practice, nothing of another practice and no secret;
nobody but the practice's admins reaches it; each export leaves an audit entry."""

from __future__ import annotations

import json
import stat
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from smartpractice.onboarding.invitations import Invitee
from smartpractice.scheduling.consultations import Appointment
from smartpractice.storage.tables import (
    api_keys,
    attendances,
    audit_log,
    calls,
    invitations,
    link_tokens,
    login_sessions,
    recovery_codes,
    second_factors,
    staff_invitations,
    users,
)
from tests.helpers import add_member, invite_staff, invoke, log_in

# Column by column, what must never leave the database in an export.
SECRET_COLUMNS = (users.c.password_hash, second_factors.c.secret, second_factors.c.pending_secret,
                  recovery_codes.c.code_hmac, login_sessions.c.token_hash, link_tokens.c.token_hash,
                  invitations.c.link_hash, invitations.c.tan_hmac, invitations.c.code,
                  invitations.c.previous_link_hash, invitations.c.previous_tan_hmac, staff_invitations.c.token_hash,
                  api_keys.c.key_hash, api_keys.c.prefix)
# What only the other practice holds.
OTHER_PRACTICE = ("Praxis am See", "see-admin", "see-anna", "otto", "dr-see", "Geheimtermin am See",
                  "see-gast@example.org", "See-EDV")


async def book(services, engine, clock, practice, clinician_id: int, patient_id: int, title: str, guest: str):
    """A consultation with a patient and a TAN guest, and a call both attended."""
    plan = Appointment.parse(title, clock.now() + timedelta(hours=1), 20, now=clock.now())
    booked = await services.consultations.schedule(practice, clinician_id, plan, patient_ids=[patient_id],
                                                   invitees=[Invitee.parse(guest, "Gabi Gast")])
    consultation_id = booked.consultation.id
    async with engine.begin() as conn:
        call_id = (await conn.execute(insert(calls).values(
            practice_id=practice.id, consultation_id=consultation_id, started_at=clock.now(),
            ended_at=clock.now() + timedelta(minutes=12)))).inserted_primary_key[0]
        await conn.execute(insert(attendances).values(
            call_id=call_id, user_id=patient_id, role="patient", client_kind="mobile", joined_at=clock.now(),
            left_at=clock.now() + timedelta(minutes=12)))
    return consultation_id


@pytest.fixture
async def two_practices(client, app, services, engine, clock, practice, clinician):
    """Praxis am Markt with an admin, a patient, a consultation, invitations, a staff
    invitation and an API key; Praxis am See with the same kinds of records. Returns the
    plain secrets only their holders ever saw: API keys and TANs."""
    await add_member(app, practice, "admin", "anna-admin")
    erika = await add_member(app, practice, "patient", "erika")
    await book(services, engine, clock, practice, clinician.user_id, erika, "Kontrolle", "gast@example.org")
    adhoc = await services.invitations.invite(practice, email="spontan@example.org", display_name="Sven Spontan",
                                              invited_by=clinician.user_id)
    markt_key = await services.api_keys.create(practice, "Praxis-EDV")
    await log_in(client, "anna-admin")
    assert (await invite_staff(client, practice, "neu@example.org", "admin")).status == 303

    other = (await services.practices.create("Praxis am See", admin_email="see@example.org",
                                             admin_username="see-admin")).practice
    await add_member(app, other, "admin", "see-anna")
    see_doctor = await add_member(app, other, "clinician", "dr-see")
    otto = await add_member(app, other, "patient", "otto")
    await book(services, engine, clock, other, see_doctor, otto, "Geheimtermin am See", "see-gast@example.org")
    see_key = await services.api_keys.create(other, "See-EDV")
    return {"api_keys": [markt_key.key, see_key.key], "tans": [adhoc.tan], "other": other}


async def secrets_in_database(engine) -> list[str]:
    found = []
    async with engine.connect() as conn:
        for column in SECRET_COLUMNS:
            found += [value for value in (await conn.execute(select(column))).scalars() if value]
    return found


async def download(client, practice) -> tuple[str, dict]:
    response = await client.get(f"/p/{practice.slug}/export")
    assert response.status == 200, await response.text()
    assert response.headers["Content-Disposition"] == f'attachment; filename="practice-{practice.slug}.json"'
    text = await response.text()
    return text, json.loads(text)


async def test_the_admin_downloads_every_kind_of_record_of_the_practice(client, two_practices, practice, clinician):
    text, data = await download(client, practice)
    assert data["format"] == "smartpractice-practice-export/1"
    assert (data["practice"]["name"], data["practice"]["slug"]) == ("Praxis am Markt", practice.slug)
    assert data["settings"]["time_zone"] == "Europe/Berlin" and data["settings"]["tan_delivery"] == "mail"
    assert {(person["username"], person["role"]) for person in data["staff"]} == {
        ("chef", "admin"), ("anna-admin", "admin"), ("dr-berg", "clinician")}
    [erika] = data["patients"]
    assert (erika["username"], erika["email"], erika["role"]) == ("erika", "erika@example.org", "patient")
    assert erika["member_since"] and "password_hash" not in erika

    [consultation] = data["consultations"]
    assert (consultation["title"], consultation["duration_minutes"], consultation["clinician"]) == (
        "Kontrolle", 20, "dr-berg")
    assert consultation["starts_at"].endswith("+00:00")
    assert [(p["username"], p["invitation_email"]) for p in consultation["participants"]] == [
        ("erika", None), (None, "gast@example.org")]
    [call] = consultation["calls"]
    [attendance] = call["attendances"]
    assert (attendance["user_id"], attendance["client_kind"]) == (erika["user_id"], "mobile")
    assert call["started_at"] < call["ended_at"] == attendance["left_at"]

    assert sorted(i["email"] for i in data["invitations"]) == ["gast@example.org", "spontan@example.org"]
    assert {key for invitation in data["invitations"] for key in invitation} >= {
        "consultation_id", "display_name", "created_at", "expires_at", "tan_used_at"}
    assert [(i["email"], i["role"]) for i in data["staff_invitations"]] == [("neu@example.org", "admin")]
    [key] = data["api_keys"]
    assert key["name"] == "Praxis-EDV" and set(key) == {"id", "name", "created_at", "last_used_at", "revoked_at"}

    actions = [entry["action"] for entry in data["audit_log"]]
    assert "api_key_created" in actions and "staff_invited" in actions
    # The export is in its own copy: the last entry, by the admin who asked.
    last = data["audit_log"][-1]
    assert (last["action"], last["actor"], last["object_kind"]) == ("practice_exported", "anna-admin", "practice")

    for needle in OTHER_PRACTICE:
        assert needle.lower() not in text.lower(), needle


async def test_no_secret_is_in_the_export(client, engine, two_practices, practice):
    text, _ = await download(client, practice)
    stored = await secrets_in_database(engine)
    # Password hashes, second factors, sessions, invitation links and TANs, API keys: all there to find.
    assert len(stored) > 20
    for secret in [*stored, *two_practices["api_keys"], *two_practices["tans"]]:
        assert secret not in text, secret
    for name in ("password_hash", "secret", "token_hash", "link_hash", "tan_hmac", "key_hash", "prefix", '"code"'):
        assert name not in text, name


async def test_only_an_admin_of_the_practice_reaches_the_export(client, app, engine, two_practices, practice):
    for someone in ("dr-berg", "erika", "see-anna"):
        assert (await log_in(client, someone)).status == 303, someone
        assert (await client.get(f"/p/{practice.slug}/export")).status == 404, someone
    async with engine.connect() as conn:
        exported = (await conn.execute(select(audit_log.c.id).where(audit_log.c.action == "practice_exported"))).all()
    assert exported == []
    # The other practice's admin exports their own, which holds nothing of this one.
    text, data = await download(client, two_practices["other"])
    assert data["practice"]["name"] == "Praxis am See"
    assert "Praxis am Markt" not in text and "erika" not in text and "Kontrolle" not in text


async def test_the_settings_page_offers_the_download_in_german_and_english(client, two_practices, practice):
    href = f'href="/p/{practice.slug}/export"'
    german = await (await client.get(f"/p/{practice.slug}/settings")).text()
    assert href in german and "Daten der Praxis herunterladen (JSON)" in german
    english = await (await client.get(f"/p/{practice.slug}/settings", headers={"Accept-Language": "en"})).text()
    assert href in english and "Download the practice's data (JSON)" in english


async def test_the_command_line_writes_the_same_document(client, cli_env, tmp_path, two_practices, practice):
    _, downloaded = await download(client, practice)
    printed = await invoke(["practice", "export", practice.slug], cli_env)
    assert printed.exit_code == 0, printed.output
    from_stdout = json.loads(printed.stdout)
    # An earlier file others could read is narrowed to the operator before the data goes in.
    target = tmp_path / "markt.json"
    target.write_text("", encoding="utf-8")
    target.chmod(0o644)
    written = await invoke(["practice", "export", practice.slug, "--output", str(target)], cli_env)
    assert written.exit_code == 0, written.output
    assert f"Data of the practice {practice.slug} written to {target}." in written.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    from_file = json.loads(target.read_text(encoding="utf-8"))

    def without_export_itself(document: dict) -> dict:
        return {key: value for key, value in document.items() if key not in ("exported_at", "audit_log")}

    for document, exports in ((from_stdout, 1), (from_file, 2)):
        assert without_export_itself(document) == without_export_itself(downloaded)
        # The operator's exports follow the admin's in the practice's log, with no actor.
        assert document["audit_log"][:len(downloaded["audit_log"])] == downloaded["audit_log"]
        added = document["audit_log"][len(downloaded["audit_log"]):]
        assert [(entry["action"], entry["actor_user_id"]) for entry in added] == [("practice_exported", None)] * exports

    unknown = await invoke(["practice", "export", "nowhere"], cli_env)
    assert unknown.exit_code == 1 and "There is no practice 'nowhere'." in unknown.output
