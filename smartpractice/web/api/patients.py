"""Patients created by the practice software (the practice-created path)."""

from __future__ import annotations

from aiohttp import web

from smartpractice.i18n import LANGUAGES
from smartpractice.keys import services_key
from smartpractice.onboarding.patients import PatientNotFound, PatientView
from smartpractice.web.api.body import Text, read_body
from smartpractice.web.api.request import api_practice, path_id
from smartpractice.web.api.responses import created

FIELDS = (
    Text("email", 254, "Where the confirmation mail goes.", format="email"),
    Text("username", 64, "Letters, digits, dots, dashes or underscores; starts with a letter or digit.",
         min_length=3, pattern="^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$"),
    Text("display_name", 200, "The patient's real name, shown to the practice."),
    Text("password", 256, "An initial password of at least 10 characters. Leave it out to have one "
         "generated; it is then returned once, as `initial_password`.", required=False),
    Text("language", 2, "Language of the mails and pages for this patient.", required=False,
         choices=LANGUAGES),
)


def patient_json(view: PatientView) -> dict:
    user = view.user
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "display_name": user.display_name,
        "language": user.mail_language,
        "email_confirmed": view.confirmed,
        "must_change_password": user.must_change_password,
        "initial_password_state": view.initial_state,
    }


async def create(request: web.Request) -> web.StreamResponse:
    practice = api_practice(request)
    body = await read_body(request, FIELDS)
    patients = request.app[services_key].patients
    new = await patients.create(
        practice,
        username=body["username"],
        email=body["email"],
        display_name=body["display_name"],
        password=body.get("password", ""),
        language=body.get("language", "de"),
    )
    payload = patient_json(await patients.find(practice, new.user_id))
    if new.generated_password is not None:
        payload["initial_password"] = new.generated_password
    return created(request, "api_patient", new.user_id, payload)


async def patient(request: web.Request) -> web.StreamResponse:
    try:
        view = await request.app[services_key].patients.find(api_practice(request), path_id(request))
    except PatientNotFound:
        raise web.HTTPNotFound() from None
    return web.json_response(patient_json(view))
