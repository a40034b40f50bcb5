"""The practice's patients, for its clinicians and admins."""

from __future__ import annotations

from aiohttp import web

from smartpractice.errors import UserError
from smartpractice.keys import language_key, services_key
from smartpractice.onboarding.patients import PatientNotFound
from smartpractice.submissions import AlreadySubmitted, Once, new_token
from smartpractice.web.forms import field, read_form
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.session import require_staff

EMPTY_FORM = {"display_name": "", "username": "", "email": "", "language": ""}


def _user_id(request: web.Request) -> int:
    raw = request.match_info["user_id"]
    if not raw.isdigit() or len(raw) > 12:
        raise web.HTTPNotFound()
    return int(raw)


async def patients(request: web.Request) -> web.StreamResponse:
    _, membership = await require_staff(request, request.match_info["slug"])
    listed = await request.app[services_key].patients.list(membership.practice)
    return render(request, "patients.html", {"practice": membership.practice, "patients": listed,
                                             "deleted": request.query.get("deleted") == "1"})


async def new_form(request: web.Request) -> web.StreamResponse:
    _, membership = await require_staff(request, request.match_info["slug"])
    typed = {**EMPTY_FORM, "language": request[language_key], "form_token": new_token()}
    return render(request, "patients_new.html", {"practice": membership.practice, "form": typed, "error": None})


async def create(request: web.Request) -> web.StreamResponse:
    active, membership = await require_staff(request, request.match_info["slug"])
    form = await read_form(request)
    typed = {name: field(form, name, 254) for name in EMPTY_FORM}
    password = field(form, "password", 4096)
    token = field(form, "form_token", 64)
    try:
        created = await request.app[services_key].patients.create(
            membership.practice, password=password, actor=active.user.id, once=Once(active.user.id, token), **typed
        )
    except AlreadySubmitted as done:
        # A reload or a second click: the account exists and its mail went out; a generated
        # password was shown on the first answer only.
        return see_other(request.app.router["patient"].url_for(slug=membership.practice.slug, user_id=str(done.object_id)))
    except UserError as error:
        kept = new_token() if error.code == "form_outdated" else token
        context = {"practice": membership.practice, "form": {**typed, "form_token": kept},
                   "error": user_message(request, error)}
        return render(request, "patients_new.html", context, status=400)
    # Rendered, not redirected: a generated password must not survive in any URL or store.
    return render(request, "patients_created.html", {"practice": membership.practice, "created": created})


async def patient(request: web.Request) -> web.StreamResponse:
    _, membership = await require_staff(request, request.match_info["slug"])
    try:
        found = await request.app[services_key].patients.find(membership.practice, _user_id(request))
    except PatientNotFound:
        raise web.HTTPNotFound() from None
    context = {"practice": membership.practice, "patient": found, "error": None, "new_password": None,
               "is_admin": membership.role == "admin", "form_token": new_token()}
    return render(request, "patients_detail.html", context)


async def new_initial_password(request: web.Request) -> web.StreamResponse:
    active, membership = await require_staff(request, request.match_info["slug"])
    patients_service = request.app[services_key].patients
    user_id = _user_id(request)
    token = field(await read_form(request), "form_token", 64)
    try:
        password = await patients_service.new_initial_password(
            membership.practice, user_id, actor=active.user.id, once=Once(active.user.id, token))
    except PatientNotFound:
        raise web.HTTPNotFound() from None
    except AlreadySubmitted as done:
        # A reload or a second click: the password was shown on the first answer only.
        return see_other(request.app.router["patient"].url_for(slug=membership.practice.slug, user_id=str(done.object_id)))
    except UserError as error:
        found = await patients_service.find(membership.practice, user_id)
        context = {"practice": membership.practice, "patient": found, "error": user_message(request, error),
                   "new_password": None, "is_admin": membership.role == "admin", "form_token": new_token()}
        return render(request, "patients_detail.html", context, status=400)
    found = await patients_service.find(membership.practice, user_id)
    context = {"practice": membership.practice, "patient": found, "error": None, "new_password": password,
               "is_admin": membership.role == "admin", "form_token": new_token()}
    return render(request, "patients_detail.html", context)
