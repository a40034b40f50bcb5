"""The OpenAPI 3.1 document of /api/v1, built from the URL map and the field declarations.

tests/test_openapi.py validates real responses against it, and schemathesis fuzzes the
running server from it; change both sides together.
"""

from __future__ import annotations

from aiohttp import web

from smartpractice.i18n import LANGUAGES
from smartpractice.keys import settings_key
from smartpractice.scheduling.lifecycle import ConsultationState
from smartpractice.web.api import consultations, invitations, patients
from smartpractice.web.api.body import JSON_TYPE, body_schema
from smartpractice.web.api.request import MAX_ID

INVITATION_STATES = ("pending", "used", "locked", "revoked", "expired")
INITIAL_PASSWORD_STATES = ("pending", "expired", "replaced")


def _ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: dict) -> dict:
    return {"content": {JSON_TYPE: {"schema": schema}}}


def _text(description: str, **extra) -> dict:
    return {"type": "string", "description": description, **extra}


def _object(properties: dict, optional: tuple[str, ...] = ()) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


def _patient(created: bool) -> dict:
    properties = {
        "id": {"type": "integer", "minimum": 1},
        "username": _text("Log-in name."),
        "email": _text("Email address."),
        "display_name": _text("The patient's name."),
        "language": {"type": "string", "enum": list(LANGUAGES)},
        "email_confirmed": {"type": "boolean", "description": "The patient followed the confirmation link."},
        "must_change_password": {"type": "boolean", "description": "The patient still has an initial password."},
        "initial_password_state": {
            "type": "string", "enum": list(INITIAL_PASSWORD_STATES),
            "description": "`pending` (not yet replaced), `expired` (unused for too long: the practice "
                           "issues a new one in its pages), or `replaced` by the patient's own.",
        },
    }
    if not created:
        return _object(properties)
    properties["initial_password"] = _text(
        "Only when the request had no password: the generated initial password. Shown this once.")
    return _object(properties, optional=("initial_password",))


def _invitation(created: bool) -> dict:
    properties = {
        "id": {"type": "integer", "minimum": 1},
        "email": _text("Email address the invitation went to."),
        "display_name": _text("Name of the invited person; may be empty."),
        "language": {"type": "string", "enum": list(LANGUAGES)},
        "state": {
            "type": "string", "enum": list(INVITATION_STATES),
            "description": "`pending` until the TAN is used; `locked` after too many wrong TANs.",
        },
        "created_at": _text("When the invitation was made.", format="date-time"),
        "expires_at": _text("When the TAN stops working.", format="date-time"),
        "code": _text("The invitation code printed in the mail, for \"Log in with TAN\" on the login page "
                      "(not a secret: the TAN is); empty for invitations made before codes existed."),
        "consultation_id": {
            "type": ["integer", "null"],
            "description": "The consultation whose waiting room the guest lands in: for an invitation made "
                           "here, an instant one that starts when the invitation is made.",
        },
    }
    if not created:
        return _object(properties)
    properties["tan"] = _text(
        "Only when the practice shows TANs to its staff instead of mailing them: the TAN, "
        "to be passed on to the invited person (e.g. by phone). Shown this once.")
    return _object(properties, optional=("tan",))


def _consultation() -> dict:
    participant = _object({
        "id": {"type": "integer", "minimum": 1},
        "kind": {"type": "string", "enum": ["patient", "guest"],
                 "description": "`patient` with an account, or `guest` invited by mail with a TAN."},
        "patient_id": {"type": ["integer", "null"], "description": "The patient, for kind `patient`."},
        "invitation_id": {"type": ["integer", "null"], "description": "The invitation, for kind `guest`."},
        "display_name": _text("Name of the participant; may be empty for a guest."),
        "email": _text("Where their mails go."),
    })
    return _object({
        "id": {"type": "integer", "minimum": 1},
        "title": _text("Shown to the participants; may be empty."),
        "starts_at": _text("Start.", format="date-time"),
        "ends_at": _text("Planned end.", format="date-time"),
        "duration_minutes": {"type": "integer", "minimum": 5, "maximum": 480},
        "state": {"type": "string", "enum": list(ConsultationState),
                  "description": "`running` from the first admission until the clinician ends it."},
        "clinician_id": {"type": ["integer", "null"], "description": "Who holds it, if set."},
        "participants": {"type": "array", "items": participant},
    })


def _error_schema() -> dict:
    return _object(
        {
            "code": _text("Stable machine-readable reason, snake_case.", pattern="^[a-z][a-z0-9_]*$"),
            "message": _text("English explanation for people."),
            "field": _text("The request body field at fault, when there is one."),
        },
        optional=("field",),
    )


RESPONSES = {
    "InvalidInput": "The body or a field is invalid (`invalid_json`, `invalid_input`, or a domain code "
                    "such as `username_invalid` or `password_too_short`).",
    "Unauthorized": "No API key, or one that is not valid or was revoked (`unauthorized`).",
    "NotFound": "No such resource in the key's practice (`not_found`).",
    "Conflict": "The user name or email address already has an account (`username_taken`, `email_taken`, "
                "or `account_conflict` when another request took it at the same moment).",
    "StateConflict": "The consultation has begun, ended or been cancelled (`consultation_running`, "
                     "`consultation_ended`, `consultation_cancelled`), is full (`too_many_participants`), "
                     "or the patient already takes part (`participant_present`).",
    "TooLarge": "The body is larger than the server accepts (`body_too_large`).",
    "UnsupportedMediaType": "The body is not sent as application/json (`unsupported_media_type`).",
    "KeyReused": "This Idempotency-Key came with a different request before (`idempotency_key_reused`).",
}
STATUS = {"InvalidInput": "400", "Unauthorized": "401", "NotFound": "404", "Conflict": "409", "StateConflict": "409",
          "TooLarge": "413", "UnsupportedMediaType": "415", "KeyReused": "422"}


def _errors(*names: str) -> dict:
    return {STATUS[name]: _ref("responses", name) for name in ("Unauthorized", *names)}


def _operation(summary: str, operation_id: str, responses: dict, *, body: str | None = None,
               with_id: bool = False, parameters: tuple[str, ...] = ()) -> dict:
    operation: dict = {"summary": summary, "operationId": operation_id, "responses": responses}
    if body:
        operation["requestBody"] = {"required": True, **_json(_ref("schemas", body))}
    names = ("Id", *parameters) if with_id else parameters
    if names:
        operation["parameters"] = [_ref("parameters", name) for name in names]
    return operation


def _success(status: str, description: str, schema: str) -> dict:
    answer = {"description": description, **_json(_ref("schemas", schema))}
    if status == "201":
        answer["headers"] = {"Location": {"description": "URL of the new resource.", "schema": {"type": "string"}}}
    return {status: answer}


def document(request: web.Request) -> dict:
    router = request.app.router

    def path(route: str) -> str:
        return router[route].canonical

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "smartpractice API",
            "version": "1",
            "description": "For practice software: patients, TAN invitations and consultations of one practice. "
                           "Each API key belongs to one practice and sees only its data. See docs/api.md.",
        },
        "servers": [{"url": request.app[settings_key].base_url}],
        "security": [{"apiKey": []}],
        "paths": {
            path("api_patient_create"): {"post": _operation(
                "Create a patient account; a confirmation mail goes to the patient", "createPatient",
                {**_success("201", "The new patient.", "CreatedPatient"),
                 **_errors("InvalidInput", "Conflict", "TooLarge", "UnsupportedMediaType")},
                body="NewPatient",
            )},
            path("api_patient"): {"get": _operation(
                "A patient of the practice", "getPatient",
                {**_success("200", "The patient.", "Patient"), **_errors("NotFound")}, with_id=True,
            )},
            path("api_invitation_create"): {"post": _operation(
                "Invite someone by email to log in with a TAN, without an account", "createInvitation",
                {**_success("201", "The new invitation.", "CreatedInvitation"),
                 **_errors("InvalidInput", "TooLarge", "UnsupportedMediaType", "KeyReused")},
                body="NewInvitation", parameters=("IdempotencyKey",),
            )},
            path("api_invitation"): {"get": _operation(
                "An invitation of the practice and its state", "getInvitation",
                {**_success("200", "The invitation.", "Invitation"), **_errors("NotFound")}, with_id=True,
            )},
            path("api_invitation_revoke"): {"post": _operation(
                "Revoke an invitation: its link and TAN stop working", "revokeInvitation",
                {**_success("200", "The invitation, now revoked (unless it was already used).", "Invitation"),
                 **_errors("NotFound")},
                with_id=True,
            )},
            path("api_consultation_create"): {
                "post": _operation(
                    "Schedule a consultation; add participants with the participants operation", "createConsultation",
                    {**_success("201", "The new consultation.", "Consultation"),
                     **_errors("InvalidInput", "TooLarge", "UnsupportedMediaType", "KeyReused")},
                    body="NewConsultation", parameters=("IdempotencyKey",),
                ),
                "get": _operation(
                    "The consultations of one day in the practice's time zone", "listConsultations",
                    {**_success("200", "The day's consultations, by start.", "ConsultationList"),
                     **_errors("InvalidInput")},
                    parameters=("Day",),
                ),
            },
            path("api_consultation"): {"get": _operation(
                "A consultation of the practice with its participants", "getConsultation",
                {**_success("200", "The consultation.", "Consultation"), **_errors("NotFound")}, with_id=True,
            )},
            path("api_consultation_cancel"): {"post": _operation(
                "Cancel a consultation; the participants get a mail and a calendar cancellation",
                "cancelConsultation",
                {**_success("200", "The consultation, now cancelled.", "Consultation"),
                 **_errors("NotFound", "StateConflict")},
                with_id=True,
            )},
            path("api_consultation_participants"): {"post": _operation(
                "Add a patient of the practice, or invite someone by mail with a TAN", "addParticipant",
                {**_success("200", "The consultation with its participants.", "ParticipantAdded"),
                 **_errors("InvalidInput", "NotFound", "StateConflict", "TooLarge", "UnsupportedMediaType")},
                body="NewParticipant", with_id=True,
            )},
        },
        "components": {
            "securitySchemes": {"apiKey": {
                "type": "http", "scheme": "bearer",
                "description": "A practice's API key (`smartpractice api-key create --practice SLUG`).",
            }},
            "parameters": {
                "Id": {
                    "name": "id", "in": "path", "required": True,
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                },
                "IdempotencyKey": {
                    "name": "Idempotency-Key", "in": "header", "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
                    "description": "Any unique string, such as a UUID: the same key with the same request "
                                   "answers what the first one made (marked `Idempotent-Replayed: true`); "
                                   "with another request it is refused. Kept for a day.",
                },
                "Day": {
                    "name": "day", "in": "query", "required": True,
                    "schema": {"type": "string", "format": "date"},
                    "description": "The day, `YYYY-MM-DD`.",
                },
            },
            "schemas": {
                "NewPatient": body_schema(patients.FIELDS),
                "Patient": _patient(created=False),
                "CreatedPatient": _patient(created=True),
                "NewInvitation": body_schema(invitations.FIELDS),
                "Invitation": _invitation(created=False),
                "CreatedInvitation": _invitation(created=True),
                "NewConsultation": body_schema(consultations.FIELDS),
                "Consultation": _consultation(),
                "ConsultationList": _object({"consultations": {"type": "array", "items": _ref("schemas", "Consultation")}}),
                "NewParticipant": body_schema(consultations.PARTICIPANT_FIELDS),
                "ParticipantAdded": _object({
                    "consultation": _ref("schemas", "Consultation"),
                    "tan": _text("Only when the practice hands TANs over itself: the new guest's TAN. Shown this once."),
                }, optional=("tan",)),
                "Error": _error_schema(),
            },
            "responses": {
                name: {"description": description, **_json(_ref("schemas", "Error"))}
                for name, description in RESPONSES.items()
            },
        },
    }


async def openapi(request: web.Request) -> web.StreamResponse:
    return web.json_response(document(request))
