"""Every staff action that touches a patient or the practice leaves an audit entry."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from smartpractice.jobs.retention import purge_expired
from smartpractice.storage.tables import audit_log
from smartpractice.web.audit_labels import ACTIONS, OBJECTS
from tests.helpers import (
    add_member,
    create_api_key,
    create_patient,
    invite,
    log_in,
    post_form,
    reissue,
)

PATIENT = {"display_name": "Erika Muster", "username": "erika", "email": "erika@example.org",
           "language": "de", "password": ""}


async def actions(engine) -> list[tuple[str, str, str | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(audit_log).order_by(audit_log.c.id))
        return [(row.action, row.object_kind, row.object_id) for row in rows]


async def test_each_listed_action_leaves_an_entry(client, services, app, engine, practice):
    admin_id = await add_member(app, practice, "admin", "praxis-admin")
    clinician_id = await add_member(app, practice, "clinician", "dr-berg")
    await log_in(client, "praxis-admin", "wrong-password-xx")
    await log_in(client, "praxis-admin")
    slug = f"/p/{practice.slug}"
    await create_patient(client, practice.slug, **PATIENT)
    await invite(client, practice, "gast@example.org", "")
    invitation_id = (await services.invitations.list(practice.id))[0].id
    await reissue(client, practice, invitation_id)
    await post_form(client, f"{slug}/invitations/{invitation_id}/revoke", {})
    await post_form(client, f"{slug}/invitations/tan-delivery", {"tan_delivery": "clinician"})
    await create_api_key(client, practice, "EDV")
    key_id = (await services.api_keys.list(practice.id))[0].id
    await post_form(client, f"{slug}/api-keys/{key_id}/revoke", {})
    await post_form(client, f"{slug}/staff/{clinician_id}/role", {"role": "admin"})
    recorded = await actions(engine)
    names = [action for action, _, _ in recorded]
    for expected in ("login_failed", "login", "patient_created", "invitation_sent", "invitation_reissued",
                     "invitation_revoked", "settings_changed", "api_key_created", "api_key_revoked", "role_changed"):
        assert expected in names, expected
    assert ("role_changed", "user", str(clinician_id)) in recorded
    assert ("api_key_revoked", "api_key", str(key_id)) in recorded
    async with engine.connect() as conn:
        actors = {row.actor_user_id for row in await conn.execute(select(audit_log).where(audit_log.c.action != "login_failed"))}
    assert actors == {admin_id}


async def test_entries_hold_no_names_or_content(client, app, engine, practice):
    await add_member(app, practice, "admin", "praxis-admin")
    await log_in(client, "praxis-admin")
    await create_patient(client, practice.slug, **PATIENT)
    async with engine.connect() as conn:
        rows = [tuple(str(value) for value in row) for row in await conn.execute(select(audit_log))]
    flat = " ".join(" ".join(row) for row in rows)
    assert "Erika" not in flat and "erika@example.org" not in flat


async def test_admin_filters_and_exports_the_practice_log(client, services, app, practice):
    other = (await services.practices.create("Praxis am See", admin_email="see@example.org", admin_username="see-admin")).practice
    await add_member(app, other, "admin", "see-chef")
    await add_member(app, practice, "admin", "praxis-admin")
    await log_in(client, "see-chef")
    client.session.cookie_jar.clear()
    await log_in(client, "praxis-admin")
    await create_patient(client, practice.slug, **PATIENT)
    page = await (await client.get(f"/p/{practice.slug}/audit?action=patient_created")).text()
    assert "patient_created" in page and "praxis-admin" in page and "see-chef" not in page
    export = await client.get(f"/p/{practice.slug}/audit.csv")
    assert export.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(await export.text())))
    assert {row["action"] for row in rows} >= {"login", "patient_created"}
    assert all(row["practice"] == "Praxis am Markt" for row in rows)
    assert all(row["actor"] != "see-chef" for row in rows)
    future = await (await client.get(f"/p/{practice.slug}/audit?from=2999-01-01&to=bogus")).text()
    assert "patient_created</td>" not in future


async def test_the_operator_reads_every_practice(client, services, practice, clinician):
    await log_in(client, "dr-berg")
    operator = await services.operator.create(email="op@example.org", username="operator")
    assert operator.password
    client.session.cookie_jar.clear()
    assert (await client.get("/operator/audit", allow_redirects=False)).status == 303
    await log_in(client, "dr-berg")
    assert (await client.get("/operator/audit")).status == 404


async def test_purge_deletes_entries_past_the_retention_period(client, engine, settings, clock, practice, clinician):
    await log_in(client, "dr-berg")
    assert await actions(engine)
    clock.advance(days=settings.retention_days + 1)
    counts = await purge_expired(engine, settings, clock, dry_run=False)
    assert counts["audit entries"] >= 1
    assert await actions(engine) == []


async def test_a_practice_may_keep_entries_shorter(client, services, engine, settings, clock, practice, clinician):
    await log_in(client, "dr-berg")
    current = await services.practice_configuration.get(practice.id)
    await services.practice_configuration.save(practice.id, replace(current, retention_days=7), actor=None)
    clock.advance(days=8)
    await purge_expired(engine, settings, clock, dry_run=False)
    assert await actions(engine) == []


# record(conn, practice, actor, "action", "object_kind", ...) and record_in_each(...) calls,
# also where the action is chosen by a condition ("a" if renewed else "b").
RECORDED = re.compile(r'(?:record|record_in_each|_record)\((?:[^()"]|\([^()]*\))*?((?:"[a-z_]+"(?: if [^"]+ else )?)+)\s*(?:,\s*"([a-z_]+)")?', re.S)


def test_every_recorded_action_and_object_has_a_label():
    source = "\n".join(path.read_text() for path in (Path(__file__).resolve().parents[1] / "smartpractice").rglob("*.py"))
    actions, objects = set(), set()
    for names, kind in RECORDED.findall(source):
        actions.update(re.findall(r'"([a-z_]+)"', names))
        objects.update([kind] if kind else [])
    assert {"consultation_created", "second_factor_renewed", "password_reset_by_operator"} <= actions
    # record(conn, None, None, action, "user", …) with the action in a variable reads as an
    # action "user"; that variable's values are the literals of the _record(...) calls.
    assert sorted(actions - set(ACTIONS) - {"user"}) == [] and sorted(objects - set(OBJECTS)) == []


async def test_the_log_speaks_the_readers_language_and_zone(client, services, app, practice, clock):
    await add_member(app, practice, "admin", "praxis-admin")
    await log_in(client, "praxis-admin")
    await create_patient(client, practice.slug, **PATIENT)
    page = await (await client.get(f"/p/{practice.slug}/audit", headers={"Accept-Language": "de"})).text()
    table = page[page.index('<table id="audit">'):]
    assert "Patient angelegt" in table and "Angemeldet" in table and "Konto" in table
    assert "patient_created" not in table and "UTC" not in page
    # The practice's zone (Berlin: one hour ahead of UTC in December), not the server's UTC.
    local = clock.now().astimezone(ZoneInfo("Europe/Berlin")).strftime("%d.%m.%Y, %H:%M")
    assert local in table and clock.now().strftime("%H:%M") != local[-5:]
    english = await (await client.get(f"/p/{practice.slug}/audit", headers={"Accept-Language": "en"})).text()
    assert "Patient created" in english and '<option value="patient_created" >Patient created</option>' in english
