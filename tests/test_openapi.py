"""The OpenAPI document tells the truth: it is valid, real answers match it, and
schemathesis, fuzzing a real server from it, finds nothing."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import hypothesis
import pytest
import requests
import schemathesis
from aiohttp.test_utils import unused_port
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from smartpractice.keys import services_key
from smartpractice.times import DEFAULT_ZONE
from tests.helpers import make_app, make_settings

OPENAPI = "/api/v1/openapi.json"
PATIENT = {"email": "erika@example.org", "username": "erika-m", "display_name": "Erika Mustermann"}
DOCUMENT_URI = "urn:smartpractice:openapi"
FUZZ_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
FUZZ_SECONDS = 60


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def document(client) -> dict:
    response = await client.get(OPENAPI)
    assert response.status == 200
    return await response.json()


class Contract:
    """Checks real answers against the document and remembers which it has seen."""

    def __init__(self, document: dict) -> None:
        self.document = document
        self.registry = Registry().with_resource(DOCUMENT_URI, Resource(document, DRAFT202012))
        self.seen: set[tuple[str, str, str]] = set()

    def documented(self) -> set[tuple[str, str, str]]:
        return {
            (path, method, status)
            for path, operations in self.document["paths"].items()
            for method, operation in operations.items()
            for status in operation["responses"]
        }

    def _resolve(self, answer: dict) -> dict:
        while "$ref" in answer:
            answer = self.registry.resolver().lookup(DOCUMENT_URI + answer["$ref"]).contents
        return answer

    async def check(self, response, method: str, path: str) -> dict:
        operation = self.document["paths"][path][method]
        status = str(response.status)
        assert status in operation["responses"], f"{method} {path} answered {status}: {await response.text()}"
        schema = self._resolve(operation["responses"][status])["content"]["application/json"]["schema"]
        assert response.content_type == "application/json"
        body = await response.json()
        validator = Draft202012Validator(
            {"$ref": DOCUMENT_URI + schema["$ref"]},
            registry=self.registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        errors = [error.message for error in validator.iter_errors(body)]
        assert errors == [], f"{method} {path} {status}: {errors} in {body}"
        self.seen.add((path, method, status))
        return body


async def test_the_document_is_valid_openapi_3_1_and_public(client, settings):
    response = await client.get(OPENAPI)
    assert response.status == 200 and response.content_type == "application/json"
    document = await response.json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": settings.base_url}]
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "http", "scheme": "bearer", "description": document["components"]["securitySchemes"]["apiKey"]["description"],
    }
    assert set(document["paths"]) == {
        "/api/v1/patients", "/api/v1/patients/{id}", "/api/v1/invitations",
        "/api/v1/invitations/{id}", "/api/v1/invitations/{id}/revoke",
        "/api/v1/consultations", "/api/v1/consultations/{id}", "/api/v1/consultations/{id}/cancel",
        "/api/v1/consultations/{id}/participants",
    }


async def test_every_documented_answer_is_given_and_matches_its_schema(client, services, practice, document, settings):
    key = (await services.api_keys.create(practice, "Praxissoftware")).key
    other = (await services.practices.create("Praxis am See", admin_email="see@example.org", admin_username="see-admin")).practice
    other_key = (await services.api_keys.create(other, "Software am See")).key
    contract = Contract(document)
    auth = bearer(key)
    too_large = b'{"email": "' + b"x" * settings.max_body_bytes + b'"}'

    async def post_errors(path: str, valid: dict, invalid: dict) -> None:
        await contract.check(await client.post(path, json=invalid, headers=auth), "post", path)
        await contract.check(await client.post(path, json=valid), "post", path)
        await contract.check(await client.post(path, data=b"email=x", headers=auth), "post", path)
        response = await client.post(
            path, data=io.BytesIO(too_large), headers=auth | {"Content-Type": "application/json"}
        )
        await contract.check(response, "post", path)

    async def key_reused(path: str, first: dict, other: dict) -> None:
        once = auth | {"Idempotency-Key": f"key-for-{path}"}
        await contract.check(await client.post(path, json=first, headers=once), "post", path)
        await contract.check(await client.post(path, json=other, headers=once), "post", path)

    async def reads(template: str, suffix: str, found_id: int, method: str = "get") -> None:
        def call(item_id, headers):
            path = template.replace("{id}", str(item_id)) + suffix
            return client.request(method.upper(), path, headers=headers)

        await contract.check(await call(found_id, auth), method, template + suffix)
        await contract.check(await call(found_id, {}), method, template + suffix)
        await contract.check(await call(found_id, bearer(other_key)), method, template + suffix)
        await contract.check(await call(2**31 - 1, auth), method, template + suffix)

    created = await contract.check(await client.post("/api/v1/patients", json=PATIENT, headers=auth), "post", "/api/v1/patients")
    assert "initial_password" in created
    typed = {**PATIENT, "username": "hans-m", "email": "hans@example.org", "password": "lindgrün-Segelboot-1987"}
    assert "initial_password" not in await contract.check(
        await client.post("/api/v1/patients", json=typed, headers=auth), "post", "/api/v1/patients")
    await contract.check(await client.post("/api/v1/patients", json=PATIENT, headers=auth), "post", "/api/v1/patients")
    await post_errors("/api/v1/patients", PATIENT, {**PATIENT, "username": "x"})
    await reads("/api/v1/patients/{id}", "", created["id"])

    invitation = await contract.check(
        await client.post("/api/v1/invitations", json={"email": "gast@example.org"}, headers=auth), "post", "/api/v1/invitations")
    await post_errors("/api/v1/invitations", {"email": "gast@example.org"}, {"email": "gast@example.org", "tan": "1"})
    await key_reused("/api/v1/invitations", {"email": "gast@example.org"}, {"email": "jemand@example.org"})
    await reads("/api/v1/invitations/{id}", "", invitation["id"])
    await reads("/api/v1/invitations/{id}", "/revoke", invitation["id"], method="post")

    tomorrow = (services.clock.now() + timedelta(days=1)).replace(microsecond=0)
    planned = {"starts_at": tomorrow.isoformat(), "title": "Kontrolle"}
    consultations = "/api/v1/consultations"
    consultation = await contract.check(await client.post(consultations, json=planned, headers=auth), "post", consultations)
    assert consultation["duration_minutes"] == 15 and consultation["participants"] == []
    await post_errors(consultations, planned, {**planned, "duration_minutes": True})
    # ?day= is a day in the practice's zone, which may already be the next one in UTC's evening.
    day = f"{consultations}?day={tomorrow.astimezone(ZoneInfo(DEFAULT_ZONE)).date().isoformat()}"
    listed = await contract.check(await client.get(day, headers=auth), "get", consultations)
    assert [c["id"] for c in listed["consultations"]] == [consultation["id"]]
    await key_reused(consultations, planned, {**planned, "title": "Befund"})
    await contract.check(await client.get(consultations + "?day=tomorrow", headers=auth), "get", consultations)
    await contract.check(await client.get(day), "get", consultations)
    await reads("/api/v1/consultations/{id}", "", consultation["id"])
    participants = f"{consultations}/{consultation['id']}/participants"
    added = await contract.check(await client.post(participants, json={"patient_id": created["id"]}, headers=auth),
                                 "post", "/api/v1/consultations/{id}/participants")
    assert [p["kind"] for p in added["consultation"]["participants"]] == ["patient"]

    contract_path = "/api/v1/consultations/{id}/participants"

    async def checked_post(path: str, body, headers):
        return await contract.check(await client.post(path, json=body, headers=headers), "post", contract_path)

    await checked_post(participants, {"email": "gast@example.org", "patient_id": created["id"]}, auth)
    await checked_post(participants, {"email": "gast@example.org"}, {})
    await contract.check(await client.post(participants, data=b"email=x", headers=auth), "post", contract_path)
    await contract.check(await client.post(participants, data=io.BytesIO(too_large),
                                           headers=auth | {"Content-Type": "application/json"}), "post", contract_path)
    await checked_post(participants, {"email": "gast@example.org"}, bearer(other_key))
    await reads("/api/v1/consultations/{id}", "/cancel", consultation["id"], method="post")
    again = await client.post(f"{consultations}/{consultation['id']}/cancel", headers=auth)
    assert (await contract.check(again, "post", "/api/v1/consultations/{id}/cancel"))["code"] == "consultation_cancelled"
    late = await checked_post(participants, {"email": "gast@example.org"}, auth)
    assert late["code"] == "consultation_cancelled"

    assert contract.seen == contract.documented()


@pytest.fixture
async def live_server(aiohttp_server, tmp_path, database_url):
    port = unused_port()
    settings = make_settings(tmp_path, database_url, BASE_URL=f"http://127.0.0.1:{port}")
    return await aiohttp_server(make_app(settings), port=port)


def _describe(failure: BaseException) -> str:
    if isinstance(failure, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in failure.exceptions)
    return str(failure)


def fuzz(base_url: str, key: str) -> list[str]:
    """Run schemathesis over every operation, positive and negative data; returns failures."""
    schema = schemathesis.openapi.from_url(base_url + OPENAPI)
    session = requests.Session()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis.settings(
                max_examples=25,
                deadline=None,
                database=None,
                derandomize=True,
                # A failure is reported as found; shrinking it could take minutes.
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                suppress_health_check=list(hypothesis.HealthCheck),
            )
            def check(case) -> None:
                response = case.call(base_url=base_url, session=session, headers=bearer(key), timeout=30)
                case.validate_response(response, checks=FUZZ_CHECKS)

            try:
                check()
            except (Exception, BaseExceptionGroup) as failure:  # noqa: BLE001 - shown together below
                failures.append(f"{operation.label} ({mode}): {_describe(failure)}")
    return failures


# The server, in the same process, draws MIME boundaries from `random` while Hypothesis
# generates cases in another thread; Hypothesis takes that for a strategy using `random`.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
async def test_schemathesis_finds_no_failure_in_any_operation(live_server):
    services = live_server.app[services_key]
    created = await services.practices.create("Praxis Fuzz", admin_email="fuzz@example.org", admin_username="fuzz-admin")
    key = (await services.api_keys.create(created.practice, "schemathesis")).key
    base_url = str(live_server.make_url("")).rstrip("/")
    started = time.monotonic()
    # schemathesis speaks synchronous HTTP; the server keeps running in this loop meanwhile.
    failures = await asyncio.to_thread(fuzz, base_url, key)
    assert failures == [], "\n\n".join(failures)
    # Positive cases got through to the service, not only to the edge's errors.
    assert await services.patients.list(created.practice)
    assert time.monotonic() - started < FUZZ_SECONDS
