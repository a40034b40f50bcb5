"""The JSON API as practice software sees it: keys, patients, invitations, and clear errors."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import delete, update

from smartpractice.storage.tables import practices
from tests.helpers import log_in, mail_link, mail_text

PATIENT = {"email": "erika@example.org", "username": "erika-m", "display_name": "Erika Mustermann"}
TYPED_PASSWORD = "lindgrün-Segelboot-1987"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def api_key(services, practice) -> str:
    return (await services.api_keys.create(practice, "Praxissoftware")).key


@pytest.fixture
def api(client, api_key):
    """Requests to the API with the practice's key."""

    class Api:
        async def post(self, path: str, body=None, **kwargs):
            return await client.post(path, json=body, headers=bearer(api_key), **kwargs)

        async def get(self, path: str):
            return await client.get(path, headers=bearer(api_key))

    return Api()


@pytest.fixture
async def other_practice_key(services) -> str:
    other = (await services.practices.create("Praxis am See", admin_email="see@example.org", admin_username="see-admin")).practice
    return (await services.api_keys.create(other, "Software am See")).key


async def error_of(response, status: int) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) <= {"code", "message", "field"} and body["message"]
    return body


# --- authentication ---------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic ZXJpa2E6cGFzc3dvcmQ=", "spk_12345678_abc", "Bearer spk_12345678_" + "A" * 43],
)
async def test_requests_without_a_valid_key_get_401(client, api_key, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.post("/api/v1/patients", json=PATIENT, headers=headers)
    body = await error_of(response, 401)
    assert body["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_tampered_key_gets_401(client, api_key):
    tampered = api_key[:-1] + ("A" if api_key[-1] != "A" else "B")
    response = await client.get("/api/v1/patients/1", headers=bearer(tampered))
    assert (await error_of(response, 401))["code"] == "unauthorized"


async def test_a_revoked_key_gets_401(client, services, practice, api_key):
    [key] = await services.api_keys.list(practice.id)
    await services.api_keys.revoke(practice.id, key.id)
    response = await client.get("/api/v1/patients/1", headers=bearer(api_key))
    assert (await error_of(response, 401))["message"] == "This API key is not valid, or it has been revoked."


async def test_the_key_of_a_deleted_practice_gets_401(client, engine, other_practice_key):
    async with engine.begin() as conn:
        await conn.execute(delete(practices).where(practices.c.name == "Praxis am See"))
    response = await client.get("/api/v1/patients/1", headers=bearer(other_practice_key))
    await error_of(response, 401)


async def test_the_bearer_scheme_is_case_insensitive(client, api_key):
    response = await client.get("/api/v1/patients/1", headers={"Authorization": f"bearer {api_key}"})
    assert (await error_of(response, 404))["code"] == "not_found"


async def test_a_browser_session_is_no_api_key(client, clinician):
    await log_in(client, "dr-berg")
    response = await client.get("/api/v1/patients/1")
    await error_of(response, 401)


async def test_a_browser_that_must_change_its_password_still_gets_json(client, services, api_key):
    created = await services.practices.create("Praxis Neu", admin_email="neu@example.org", admin_username="neu-admin")
    await log_in(client, "neu-admin", created.admin_password)
    assert (await client.get("/", allow_redirects=False)).headers["Location"] == "/account/password"
    response = await client.get("/api/v1/patients/1", headers=bearer(api_key), allow_redirects=False)
    assert (await error_of(response, 404))["code"] == "not_found"


# --- patients ---------------------------------------------------------------------


async def test_created_patient_gets_a_confirmation_mail(api, client, smtp):
    response = await api.post("/api/v1/patients", {**PATIENT, "password": TYPED_PASSWORD, "language": "en"})
    assert response.status == 201, await response.text()
    body = await response.json()
    assert response.headers["Location"] == f"/api/v1/patients/{body['id']}"
    assert body == {
        "id": body["id"],
        "username": "erika-m",
        "email": "erika@example.org",
        "display_name": "Erika Mustermann",
        "language": "en",
        "email_confirmed": False,
        "must_change_password": True,
        "initial_password_state": "pending",
    }
    [mail] = await smtp.wait_for(1)
    assert mail["To"] == "erika@example.org"
    assert TYPED_PASSWORD not in mail_text(mail)
    link = mail_link(mail)
    assert link.startswith("/confirm/")
    assert (await client.get(link)).status == 200

    fetched = await api.get(response.headers["Location"])
    assert fetched.status == 200
    assert await fetched.json() == body


async def test_a_generated_initial_password_is_returned_once(api, services):
    response = await api.post("/api/v1/patients", PATIENT)
    assert response.status == 201
    body = await response.json()
    password = body.pop("initial_password")
    assert len(password) >= 10
    again = await (await api.get(f"/api/v1/patients/{body['id']}")).json()
    assert "initial_password" not in again
    assert again == body


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"username": "erika m"}, "username_invalid", None),
        ({"email": "not-an-address"}, "email_invalid", None),
        ({"display_name": "   "}, "display_name_invalid", None),
        ({"password": "kurz"}, "password_too_short", None),
        ({"password": "password1234"}, "password_too_common", None),
        ({"password": "erika-m-erika-m-2024"}, "password_contains_context", None),
        ({"language": "fr"}, "invalid_input", "language"),
        ({"email": 42}, "invalid_input", "email"),
        ({"display_name": None}, "invalid_input", "display_name"),
        ({"username": ["erika"]}, "invalid_input", "username"),
        ({"display_name": "x" * 201}, "invalid_input", "display_name"),
        ({"password": ""}, "invalid_input", "password"),
        ({"display_name": "Erika\x00"}, "invalid_input", "display_name"),
        ({"display_name": "Erika \ud800"}, "invalid_input", "display_name"),
    ],
)
async def test_invalid_patient_fields_get_400_with_a_code(api, change, code, field):
    body = await error_of(await api.post("/api/v1/patients", {**PATIENT, **change}), 400)
    assert body["code"] == code
    assert body.get("field") == field


async def test_a_missing_field_is_named(api):
    body = await error_of(await api.post("/api/v1/patients", {"email": "erika@example.org"}), 400)
    assert body == {"code": "invalid_input", "message": "The field `username` is missing.", "field": "username"}


async def test_an_unknown_field_is_refused_by_name(api):
    body = await error_of(await api.post("/api/v1/patients", {**PATIENT, "role": "admin"}), 400)
    assert body == {"code": "invalid_input", "message": "Unknown field `role`.", "field": "role"}


async def test_domain_errors_carry_an_english_message(api):
    body = await error_of(await api.post("/api/v1/patients", {**PATIENT, "password": "kurz"}), 400)
    assert body["message"] == "The password needs at least 10 characters."


async def test_a_taken_username_or_email_is_a_409(api, clinician):
    taken_name = await api.post("/api/v1/patients", {**PATIENT, "username": "dr-berg"})
    assert (await error_of(taken_name, 409))["code"] == "username_taken"
    taken_email = await api.post("/api/v1/patients", {**PATIENT, "email": "DR-BERG@example.org"})
    assert (await error_of(taken_email, 409))["code"] == "email_taken"


@pytest.mark.parametrize(
    ("content_type", "data", "status", "code"),
    [
        ("application/x-www-form-urlencoded", b"email=erika%40example.org", 415, "unsupported_media_type"),
        ("text/plain", b'{"email": "erika@example.org"}', 415, "unsupported_media_type"),
        (None, b"", 415, "unsupported_media_type"),
        ("application/json", b"", 400, "invalid_json"),
        ("application/json", b'{"email": ', 400, "invalid_json"),
        ("application/json", b"\xff\xfe\x00{", 400, "invalid_json"),
        ("application/json", b'{"email": NaN}', 400, "invalid_json"),
        ("application/json", b'{"email": "a@example.org", "email": "b@example.org"}', 400, "invalid_json"),
        ("application/json", b"[" * 100_000, 400, "invalid_json"),
        ("application/json", b'["erika"]', 400, "invalid_input"),
        ("application/json", b'"erika"', 400, "invalid_input"),
        ("application/json; charset=utf-8", b"null", 400, "invalid_input"),
    ],
)
async def test_bodies_that_are_not_a_json_object_are_refused(client, api_key, content_type, data, status, code):
    headers = bearer(api_key) | ({"Content-Type": content_type} if content_type else {})
    response = await client.post("/api/v1/patients", data=data, headers=headers)
    assert (await error_of(response, status))["code"] == code


async def test_an_oversized_body_is_a_413(client, api_key, settings):
    data = io.BytesIO(b'{"display_name": "' + b"x" * settings.max_body_bytes + b'"}')
    response = await client.post(
        "/api/v1/patients", data=data, headers=bearer(api_key) | {"Content-Type": "application/json"}
    )
    assert (await error_of(response, 413))["code"] == "body_too_large"


async def test_another_practices_patient_is_not_found(api, client, other_practice_key):
    created = await (await api.post("/api/v1/patients", PATIENT)).json()
    response = await client.get(f"/api/v1/patients/{created['id']}", headers=bearer(other_practice_key))
    body = await error_of(response, 404)
    assert body["code"] == "not_found"
    assert "erika" not in await response.text()


async def test_staff_members_are_no_patients_of_the_api(api, clinician):
    response = await api.get(f"/api/v1/patients/{clinician.user_id}")
    assert (await error_of(response, 404))["code"] == "not_found"


@pytest.mark.parametrize("path", ["/api/v1/patients/abc", "/api/v1/patients/-1", "/api/v1/patients/0",
                                  "/api/v1/patients/99999999999999999999999", "/api/v1/patients/" + "9" * 5000,
                                  "/api/v1/patients/%D9%A3", "/api/v1/nothing", "/api/v2/patients"])
async def test_other_ids_and_paths_are_json_404s(api, path):
    assert (await error_of(await api.get(path), 404))["code"] == "not_found"


async def test_a_wrong_method_is_a_json_405(client, api_key):
    response = await client.delete("/api/v1/patients", headers=bearer(api_key))
    assert (await error_of(response, 405))["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


# --- invitations ------------------------------------------------------------------


async def set_tan_delivery(engine, practice, delivery: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(practices).where(practices.c.id == practice.id).values(tan_delivery=delivery))


async def test_invitation_is_mailed_and_its_tan_is_not_returned(api, smtp):
    response = await api.post("/api/v1/invitations", {"email": "gast@example.org", "display_name": "Gast"})
    assert response.status == 201, await response.text()
    body = await response.json()
    assert response.headers["Location"] == f"/api/v1/invitations/{body['id']}"
    assert "tan" not in body
    assert body["state"] == "pending"
    assert (body["email"], body["display_name"], body["language"]) == ("gast@example.org", "Gast", "de")
    assert body["created_at"].endswith("Z") and body["expires_at"] > body["created_at"]
    # Without a planned time it is an instant consultation, and the mail names its code.
    assert isinstance(body["consultation_id"], int) and re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}", body["code"])
    [mail] = await smtp.wait_for(1)
    assert mail["To"] == "gast@example.org" and body["code"] in mail_text(mail)


async def test_with_clinician_delivery_the_tan_is_returned_and_not_mailed(api, engine, practice, smtp):
    await set_tan_delivery(engine, practice, "clinician")
    response = await api.post("/api/v1/invitations", {"email": "gast@example.org", "language": "en"})
    assert response.status == 201, await response.text()
    body = await response.json()
    tan = body["tan"]
    assert len(tan) >= 6
    [mail] = await smtp.wait_for(1)
    assert tan not in mail_text(mail)
    fetched = await (await api.get(f"/api/v1/invitations/{body['id']}")).json()
    assert "tan" not in fetched


async def test_an_invitation_can_be_read_and_revoked(api):
    created = await (await api.post("/api/v1/invitations", {"email": "gast@example.org"})).json()
    path = f"/api/v1/invitations/{created['id']}"
    assert (await (await api.get(path)).json())["state"] == "pending"
    revoked = await api.post(path + "/revoke")
    assert revoked.status == 200
    assert (await revoked.json())["state"] == "revoked"
    assert (await (await api.get(path)).json())["state"] == "revoked"


@pytest.mark.parametrize(
    ("change", "field"),
    [({"email": None}, "email"), ({"display_name": 1}, "display_name"), ({"tan": "123456"}, "tan"),
     ({"language": "DE"}, "language")],
)
async def test_invalid_invitation_fields_get_400(api, change, field):
    body = await error_of(await api.post("/api/v1/invitations", {"email": "gast@example.org", **change}), 400)
    assert (body["code"], body["field"]) == ("invalid_input", field)


async def test_an_invitation_to_a_bad_address_gets_400(api):
    body = await error_of(await api.post("/api/v1/invitations", {"email": "gast"}), 400)
    assert body["code"] == "email_invalid"


async def test_another_practices_invitation_is_not_found(api, client, other_practice_key):
    created = await (await api.post("/api/v1/invitations", {"email": "gast@example.org"})).json()
    path = f"/api/v1/invitations/{created['id']}"
    for response in (
        await client.get(path, headers=bearer(other_practice_key)),
        await client.post(path + "/revoke", headers=bearer(other_practice_key)),
    ):
        assert (await error_of(response, 404))["code"] == "not_found"
    assert (await (await api.get(path)).json())["state"] == "pending"
