"""Consultations scheduled by the practice software."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from smartpractice.errors import UserError
from smartpractice.i18n import LANGUAGES, N_
from smartpractice.keys import services_key
from smartpractice.onboarding.invitations import Invitee
from smartpractice.scheduling.consultations import (
    LONGEST_MINUTES,
    SHORTEST_MINUTES,
    Appointment,
    ConsultationNotFound,
    ConsultationView,
)
from smartpractice.submissions import AlreadySubmitted, KeyReused
from smartpractice.times import parse_day
from smartpractice.web.api.body import Integer, Text, read_body
from smartpractice.web.api.errors import ApiError
from smartpractice.web.api.idempotency import idempotency, key_reused, replayed
from smartpractice.web.api.request import MAX_ID, api_practice, path_id
from smartpractice.web.api.responses import created, timestamp

FIELDS = (
    Text("starts_at", 40, "Start as RFC 3339 date-time with offset, e.g. `2026-03-30T10:00:00+02:00`.",
         format="date-time"),
    Integer("duration_minutes", SHORTEST_MINUTES, LONGEST_MINUTES, "Length; the practice's default when left out.", required=False),
    Text("title", 200, "Shown to the participants on their pages; never sent by mail.", required=False,
         min_length=0),
    Integer("clinician_id", 1, MAX_ID, "The clinician who holds it (a member of the practice who treats patients: a clinician, or an admin who does).",
            required=False),
)
PARTICIPANT_FIELDS = (
    Integer("patient_id", 1, MAX_ID, "A patient of the practice with an account. Give this or `email`.",
            required=False),
    Text("email", 254, "Invite someone without an account by mail with a TAN. Give this or `patient_id`.",
         required=False, format="email"),
    Text("display_name", 200, "Name of the invited person.", required=False, min_length=0),
    Text("language", 2, "Language of the invitation mail.", required=False, choices=LANGUAGES),
)


def consultation_json(view: ConsultationView) -> dict:
    consultation = view.consultation
    return {
        "id": consultation.id,
        "title": consultation.title,
        "starts_at": timestamp(consultation.starts_at),
        "ends_at": timestamp(consultation.ends_at),
        "duration_minutes": consultation.duration_minutes,
        "state": consultation.state,
        "clinician_id": consultation.clinician_id,
        "participants": [
            {
                "id": participant.id,
                "kind": "patient" if participant.user_id else "guest",
                "patient_id": participant.user_id,
                "invitation_id": participant.invitation_id,
                "display_name": participant.display_name,
                "email": participant.email,
            }
            for participant in view.participants
        ],
    }


def _start(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ApiError(400, "invalid_input", "`starts_at` must be an RFC 3339 date-time with an offset.",
                       field="starts_at")
    return moment


async def _view(request: web.Request, consultation_id: int) -> ConsultationView:
    try:
        return await request.app[services_key].consultations.get(api_practice(request).id, consultation_id)
    except ConsultationNotFound:
        raise web.HTTPNotFound() from None


async def create(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, FIELDS)
    practice = api_practice(request)
    services = request.app[services_key]
    policy = await services.consultations.policy(practice.id)
    plan = Appointment.parse(body.get("title", ""), _start(body["starts_at"]),
                      body.get("duration_minutes", policy.consultation_minutes), now=services.clock.now())
    clinician = body.get("clinician_id")
    if clinician is not None and not await services.consultations.is_clinician(practice.id, clinician):
        raise UserError("clinician_unknown", N_("This clinician does not belong to the practice."))
    try:
        scheduled = await services.consultations.schedule(practice, clinician, plan, once=idempotency(request, body))
    except KeyReused:
        raise key_reused() from None
    except AlreadySubmitted as first:
        return replayed(created(request, "api_consultation", first.object_id,
                                consultation_json(await _view(request, first.object_id))))
    return created(request, "api_consultation", scheduled.consultation.id,
                   consultation_json(await _view(request, scheduled.consultation.id)))


async def consultation(request: web.Request) -> web.StreamResponse:
    return web.json_response(consultation_json(await _view(request, path_id(request))))


async def by_day(request: web.Request) -> web.StreamResponse:
    """One day in the practice's time zone."""
    try:
        day = parse_day(request.query.get("day", ""))
    except UserError:
        raise ApiError(400, "invalid_input", "Give the day as `?day=YYYY-MM-DD`.", field="day") from None
    views = await request.app[services_key].consultations.day_views(api_practice(request).id, day)
    return web.json_response({"consultations": [consultation_json(view) for view in views]})


async def cancel(request: web.Request) -> web.StreamResponse:
    consultation_id = path_id(request)
    try:
        await request.app[services_key].consultations.cancel(api_practice(request), consultation_id)
    except ConsultationNotFound:
        raise web.HTTPNotFound() from None
    return web.json_response(consultation_json(await _view(request, consultation_id)))


async def add_participant(request: web.Request) -> web.StreamResponse:
    consultation_id = path_id(request)
    body = await read_body(request, PARTICIPANT_FIELDS)
    if ("patient_id" in body) == ("email" in body):
        raise ApiError(400, "invalid_input", "Give either `patient_id` or `email`.")
    invitees = [Invitee.parse(body["email"], body.get("display_name", ""), body.get("language", "de"))] \
        if "email" in body else []
    try:
        added = await request.app[services_key].consultations.add_participants(
            api_practice(request), consultation_id, None,
            patient_ids=[body["patient_id"]] if "patient_id" in body else [], invitees=invitees,
        )
    except ConsultationNotFound:
        raise web.HTTPNotFound() from None
    payload: dict[str, object] = {"consultation": consultation_json(await _view(request, consultation_id))}
    # As for invitations: a TAN is returned only when the practice hands TANs over itself.
    handed_over = [new.tan for new in added.invitations if not new.tan_in_mail]
    if handed_over:
        payload["tan"] = handed_over[0]
    return web.json_response(payload)
