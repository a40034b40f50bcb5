"""The consultations API: practice software schedules, reads, lists, adds and cancels."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from smartpractice.storage.tables import users
from tests.helpers import add_member, mail_settled


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_practice_software_schedules_invites_lists_and_cancels(client, services, app, smtp, practice, clinician):
    auth = bearer((await services.api_keys.create(practice, "Praxissoftware")).key)
    # At 10:00 UTC the day is the same in UTC and in the practice's zone, which ?day= means.
    start = (services.clock.now() + timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
    made = await client.post("/api/v1/consultations", headers=auth, json={
        "starts_at": start.isoformat(), "duration_minutes": 30, "clinician_id": clinician.user_id})
    assert made.status == 201
    consultation = await made.json()
    assert made.headers["Location"] == f"/api/v1/consultations/{consultation['id']}"
    assert consultation["state"] == "scheduled" and consultation["clinician_id"] == clinician.user_id

    erika = await add_member(app, practice, "patient", "erika")
    path = f"/api/v1/consultations/{consultation['id']}/participants"
    assert (await client.post(path, headers=auth, json={"patient_id": erika})).status == 200
    guest = await (await client.post(path, headers=auth, json={"email": "gast@example.org", "language": "en"})).json()
    assert [p["kind"] for p in guest["consultation"]["participants"]] == ["patient", "guest"]
    assert "tan" not in guest  # the TAN went out in the mail
    await smtp.wait_for(2)
    invitation = smtp.to("gast@example.org")[0]
    assert "Praxis am Markt invites you" in invitation.get_body(preferencelist=("plain",)).get_content()
    assert any(part.get_content_type() == "text/calendar" for part in invitation.iter_attachments())

    listed = await (await client.get(f"/api/v1/consultations?day={start.date().isoformat()}", headers=auth)).json()
    assert [c["id"] for c in listed["consultations"]] == [consultation["id"]]
    cancelled = await client.post(f"/api/v1/consultations/{consultation['id']}/cancel", headers=auth)
    assert (await cancelled.json())["state"] == "cancelled"
    await smtp.wait_for(4)
    assert len(smtp.to("gast@example.org")) == 2


async def test_bad_starts_and_foreign_ids_get_clear_errors(client, services, app, engine, practice, clinician):
    auth = bearer((await services.api_keys.create(practice, "Praxissoftware")).key)
    for starts_at, code in (("2026-03-30T10:00:00", "invalid_input"), ("9999-12-31T23:59:00+00:00", "start_too_far"),
                            ("2001-01-01T10:00:00+00:00", "start_past")):
        answer = await client.post("/api/v1/consultations", headers=auth, json={"starts_at": starts_at})
        assert answer.status == 400 and (await answer.json())["code"] == code
    other = await services.practices.create("Praxis am See", admin_email="see@example.org", admin_username="see-admin")
    theirs = await add_member(app, other.practice, "clinician", "dr-see")
    start = (services.clock.now() + timedelta(days=1)).isoformat()
    refused = await client.post("/api/v1/consultations", headers=auth, json={"starts_at": start, "clinician_id": theirs})
    assert (await refused.json())["code"] == "clinician_unknown"
    # An admin holds consultations only when they treat patients too.
    admin = await add_member(app, practice, "admin", "praxis-admin")
    refused = await client.post("/api/v1/consultations", headers=auth, json={"starts_at": start, "clinician_id": admin})
    assert (await refused.json())["code"] == "clinician_unknown"
    founder = await services.practices.create("Praxis Eins", admin_email="eins@example.org", admin_username="eins",
                                              admin_treats_patients=True)
    async with engine.connect() as conn:
        [founder_id] = (await conn.execute(select(users.c.id).where(users.c.username == "eins"))).scalars()
    founder_auth = bearer((await services.api_keys.create(founder.practice, "Eins")).key)
    held = await client.post("/api/v1/consultations", headers=founder_auth, json={"starts_at": start, "clinician_id": founder_id})
    assert held.status == 201 and (await held.json())["clinician_id"] == founder_id
    other_auth = bearer((await services.api_keys.create(other.practice, "See")).key)
    made = await (await client.post("/api/v1/consultations", headers=other_auth, json={"starts_at": start})).json()
    for method, suffix in (("GET", ""), ("POST", "/cancel")):
        answer = await client.request(method, f"/api/v1/consultations/{made['id']}{suffix}", headers=auth)
        assert answer.status == 404 and (await answer.json())["code"] == "not_found"
    patient = await add_member(app, other.practice, "patient", "see-patient")
    own = await (await client.post("/api/v1/consultations", headers=auth, json={"starts_at": start})).json()
    foreign_patient = await client.post(f"/api/v1/consultations/{own['id']}/participants", headers=auth,
                                        json={"patient_id": patient})
    assert (await foreign_patient.json())["code"] == "patient_unknown"


async def test_an_idempotency_key_makes_one_invitation_and_one_mail(client, services, app, smtp, practice):
    """Practice software retries after a lost answer: the same key and request answer what
    the first made; the same key with another request is refused; nothing is sent twice."""
    auth = bearer((await services.api_keys.create(practice, "Praxissoftware")).key)
    body = {"email": "gast@example.org", "display_name": "Gabi Gast", "language": "de"}
    key = {**auth, "Idempotency-Key": "9f1c2d7e-0b5a-4c1e-8d3f-2a6b7c8d9e0f"}
    first = await client.post("/api/v1/invitations", headers=key, json=body)
    again = await client.post("/api/v1/invitations", headers=key, json=dict(reversed(body.items())))
    assert first.status == again.status == 201
    assert first.headers["Location"] == again.headers["Location"]
    assert (await first.json())["id"] == (await again.json())["id"]
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"
    other = await client.post("/api/v1/invitations", headers=key, json={**body, "email": "jemand@example.org"})
    assert other.status == 422
    assert await other.json() == {"code": "idempotency_key_reused", "field": "Idempotency-Key",
                                  "message": (await other.json())["message"]}
    await mail_settled(app)
    assert [m["To"] for m in smtp.messages] == ["gast@example.org"]
    assert len(await services.invitations.list(practice.id)) == 1

    # Keys belong to one practice: another practice's software may use the same string.
    see = (await services.practices.create("Praxis am See", admin_email="see@example.org", admin_username="see")).practice
    theirs = {**bearer((await services.api_keys.create(see, "See")).key), "Idempotency-Key": key["Idempotency-Key"]}
    assert (await client.post("/api/v1/invitations", headers=theirs, json=body)).status == 201
    for bad in ("", "a" * 256, "mit leerzeichen", "ümlaut"):
        refused = await client.post("/api/v1/invitations", headers={**auth, "Idempotency-Key": bad}, json=body)
        assert refused.status == 400 and (await refused.json())["field"] == "Idempotency-Key", bad


async def test_an_idempotency_key_sent_twice_at_once_makes_one_consultation(client, services, app, smtp, practice, clinician):
    auth = bearer((await services.api_keys.create(practice, "Praxissoftware")).key)
    start = (services.clock.now() + timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0).isoformat()
    body = {"starts_at": start, "duration_minutes": 20, "clinician_id": clinician.user_id}
    key = {**auth, "Idempotency-Key": "termin-4711"}
    answers = await asyncio.gather(*(client.post("/api/v1/consultations", headers=key, json=body) for _ in range(2)))
    assert [answer.status for answer in answers] == [201, 201]
    assert len({(await answer.json())["id"] for answer in answers}) == 1
    assert sorted(answer.headers.get("Idempotent-Replayed", "") for answer in answers) == ["", "true"]
    moved = await client.post("/api/v1/consultations", headers=key, json={**body, "duration_minutes": 30})
    assert moved.status == 422 and (await moved.json())["code"] == "idempotency_key_reused"
    day = await (await client.get(f"/api/v1/consultations?day={start[:10]}", headers=auth)).json()
    assert len(day["consultations"]) == 1
