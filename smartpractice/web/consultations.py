"""Staff pages for consultations: agenda, schedule, change, cancel, participants, past calls.

Scheduling and adding a participant answer with a redirect to the consultation's page, and
their forms carry a one-time token: a reload or a second sending makes one consultation
(one participant) and one mail.
"""

from __future__ import annotations

from datetime import date, timedelta

from aiohttp import web

from smartpractice.errors import UserError
from smartpractice.keys import services_key
from smartpractice.onboarding.invitations import Invitee
from smartpractice.scheduling.consultations import Appointment, ConsultationNotFound
from smartpractice.submissions import AlreadySubmitted, Once, new_token
from smartpractice.times import local, local_to_utc, parse_day
from smartpractice.web.forms import field, read_form
from smartpractice.web.handover import hand_over, handed_over, shown
from smartpractice.web.invitations import made
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.session import require_clinician, require_staff

FIELDS = ("title", "day", "time", "duration", "patient", "guest_email", "guest_name", "guest_language", "form_token")


def _consultation_id(request: web.Request) -> int:
    return int(request.match_info["id"])


async def agenda(request: web.Request) -> web.StreamResponse:
    """A day or a week of consultations, in the practice's time zone."""
    active, membership = await require_staff(request, request.match_info["slug"])
    services = request.app[services_key]
    policy = await services.consultations.policy(membership.practice.id)
    today = local(services.clock.now(), policy.time_zone).date()
    try:
        first = parse_day(request.query["day"]) if "day" in request.query else today
    except UserError:
        raise web.HTTPBadRequest(reason="bad day") from None
    days = 7 if request.query.get("view") == "week" else 1
    if days == 7:
        first -= timedelta(days=first.weekday())
    # An admin who does not treat patients holds none: they see everyone's.
    mine = membership.is_clinician and request.query.get("who") != "all"
    consultations = await services.consultations.agenda(
        membership.practice.id, first, days, clinician_id=active.user.id if mine else None
    )
    by_day: dict[date, list] = {first + timedelta(days=n): [] for n in range(days)}
    for consultation in consultations:
        by_day.setdefault(local(consultation.starts_at, policy.time_zone).date(), []).append(consultation)
    context = {
        "practice": membership.practice, "days": by_day, "view": "week" if days == 7 else "day",
        "first": first, "step": timedelta(days=days), "today": today, "zone": policy.time_zone, "mine": mine,
        "treats_patients": membership.is_clinician,
    }
    return render(request, "consultations.html", context)


async def _form_page(request, membership, form: dict, *, error: str | None = None, status: int = 200):
    services = request.app[services_key]
    context = {
        "practice": membership.practice,
        "form": form,
        "error": error,
        "patients": await services.patients.list(membership.practice),
        "policy": await services.consultations.policy(membership.practice.id),
    }
    return render(request, "consultation_new.html", context, status=status)


async def new_form(request: web.Request) -> web.StreamResponse:
    _, membership = await require_clinician(request, request.match_info["slug"])
    services = request.app[services_key]
    policy = await services.consultations.policy(membership.practice.id)
    soon = local(services.clock.now() + timedelta(hours=1), policy.time_zone)
    form = {name: "" for name in FIELDS} | {
        "day": request.query.get("day", soon.date().isoformat()), "time": soon.strftime("%H:00"),
        "duration": str(policy.consultation_minutes), "guest_language": "de", "form_token": new_token(),
    }
    return await _form_page(request, membership, form)


def _plan(services, policy, form: dict) -> Appointment:
    starts_at = local_to_utc(form["day"], form["time"], policy.time_zone)
    return Appointment.parse(form["title"], starts_at, form["duration"], now=services.clock.now())


async def create(request: web.Request) -> web.StreamResponse:
    active, membership = await require_clinician(request, request.match_info["slug"])
    services = request.app[services_key]
    posted = await read_form(request)
    form = {name: field(posted, name, 254) for name in FIELDS}
    try:
        policy = await services.consultations.policy(membership.practice.id)
        plan = _plan(services, policy, form)
        patients = [int(form["patient"])] if form["patient"].isdigit() else []
        invitees = [Invitee.parse(form["guest_email"], form["guest_name"], form["guest_language"] or "de")] \
            if form["guest_email"].strip() else []
        scheduled = await services.consultations.schedule(
            membership.practice, active.user.id, plan, patient_ids=patients, invitees=invitees, actor=active.user.id,
            once=Once(active.user.id, form["form_token"]),
        )
    except AlreadySubmitted as done:
        return see_other(made(request, membership.practice.slug, done))
    except UserError as error:
        if error.code == "form_outdated":
            form["form_token"] = new_token()
        return await _form_page(request, membership, form, error=user_message(request, error), status=400)
    return _to_detail(request, membership, scheduled.consultation.id, scheduled.invitations)


def _to_detail(request, membership, consultation_id: int, invitations=()) -> web.Response:
    """Post/redirect/get: a reload of the page that follows sends nothing again."""
    response = see_other(request.app.router["consultation"].url_for(slug=membership.practice.slug,
                                                                     id=str(consultation_id)))
    hand_over(request, response, list(invitations))
    return response


async def _detail(request, membership, consultation_id: int, *, error: str | None = None, status: int = 200,
                  form: dict | None = None, participant: dict | None = None):
    services = request.app[services_key]
    try:
        view = await services.consultations.get(membership.practice.id, consultation_id)
    except ConsultationNotFound:
        raise web.HTTPNotFound() from None
    starts = local(view.consultation.starts_at, view.policy.time_zone)
    edit = form or {
        "title": view.consultation.title, "day": starts.date().isoformat(), "time": starts.strftime("%H:%M"),
        "duration": str(view.consultation.duration_minutes),
    }
    tans = handed_over(request)
    context = {
        "practice": membership.practice, "view": view, "starts": starts, "edit": edit, "error": error,
        "treats_patients": membership.is_clinician,
        # TANs shown once to the clinician when the practice hands them over by phone.
        "handed_over": [(p.display_name or p.email, tans[p.invitation_id]) for p in view.participants
                        if p.invitation_id in tans],
        "patients": await services.patients.list(membership.practice),
        "participant": participant or {"patient": "", "guest_email": "", "guest_name": "", "guest_language": "de",
                                       "form_token": new_token()},
    }
    response = render(request, "consultation.html", context, status=status)
    shown(request, response)
    return response


async def consultation(request: web.Request) -> web.StreamResponse:
    _, membership = await require_staff(request, request.match_info["slug"])
    return await _detail(request, membership, _consultation_id(request))


async def reschedule(request: web.Request) -> web.StreamResponse:
    active, membership = await require_staff(request, request.match_info["slug"])
    services = request.app[services_key]
    posted = await read_form(request)
    form = {name: field(posted, name, 254) for name in ("title", "day", "time", "duration")}
    try:
        plan = _plan(services, await services.consultations.policy(membership.practice.id), form)
        await services.consultations.reschedule(membership.practice, _consultation_id(request), plan,
                                                actor=active.user.id)
    except ConsultationNotFound:
        raise web.HTTPNotFound() from None
    except UserError as error:
        return await _detail(request, membership, _consultation_id(request), error=user_message(request, error),
                             status=400, form=form)
    return see_other(request.app.router["consultation"].url_for(slug=membership.practice.slug,
                                                                 id=str(_consultation_id(request))))


async def cancel(request: web.Request) -> web.StreamResponse:
    active, membership = await require_staff(request, request.match_info["slug"])
    try:
        await request.app[services_key].consultations.cancel(membership.practice, _consultation_id(request),
                                                             actor=active.user.id)
    except ConsultationNotFound:
        raise web.HTTPNotFound() from None
    except UserError as error:
        return await _detail(request, membership, _consultation_id(request), error=user_message(request, error),
                             status=409)
    return see_other(request.app.router["consultation"].url_for(slug=membership.practice.slug,
                                                                 id=str(_consultation_id(request))))


async def add_participant(request: web.Request) -> web.StreamResponse:
    active, membership = await require_staff(request, request.match_info["slug"])
    services = request.app[services_key]
    posted = await read_form(request)
    typed = {"patient": field(posted, "patient", 20), "guest_email": field(posted, "guest_email", 254),
             "guest_name": field(posted, "guest_name", 200), "guest_language": field(posted, "guest_language", 8),
             "form_token": field(posted, "form_token", 64)}
    patient, email = typed["patient"], typed["guest_email"]
    try:
        added = await services.consultations.add_participants(
            membership.practice, _consultation_id(request), active.user.id,
            patient_ids=[int(patient)] if patient.isdigit() else [],
            invitees=[Invitee.parse(email, typed["guest_name"], typed["guest_language"] or "de")]
            if email.strip() else [],
            once=Once(active.user.id, typed["form_token"]),
        )
    except ConsultationNotFound:
        raise web.HTTPNotFound() from None
    except AlreadySubmitted as done:
        return see_other(made(request, membership.practice.slug, done))
    except UserError as error:
        if error.code == "form_outdated":
            typed["form_token"] = new_token()
        return await _detail(request, membership, _consultation_id(request), error=user_message(request, error),
                             status=400, participant=typed)
    return _to_detail(request, membership, _consultation_id(request), added.invitations)


async def past(request: web.Request) -> web.StreamResponse:
    """Calls of the last weeks with their durations, which practices need for billing."""
    _, membership = await require_staff(request, request.match_info["slug"])
    services = request.app[services_key]
    calls = await services.consultations.past_calls(membership.practice.id)
    policy = await services.consultations.policy(membership.practice.id)
    return render(request, "consultations_past.html",
                  {"practice": membership.practice, "calls": calls, "zone": policy.time_zone})
