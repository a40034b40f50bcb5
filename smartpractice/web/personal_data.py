"""Data rights on the web: a person's copy of their data and the deletion of their
account; a practice admin's copy and deletion of a patient (accounts/personal_data.py); those of a
staff member are on the staff page (web/staff.py)."""

from __future__ import annotations

import re
from datetime import datetime

from aiohttp import web

from smartpractice.accounts.personal_data import as_json
from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.keys import active_session_key, language_key, services_key
from smartpractice.onboarding.patients import PatientNotFound
from smartpractice.times import spoken
from smartpractice.web.account import account_page
from smartpractice.web.client import client_address
from smartpractice.web.cookies import SESSION, clear_cookie
from smartpractice.web.forms import field, read_form
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.session import reader_zone, require_admin, require_login


def json_download(data: dict, name: str) -> web.Response:
    return web.Response(text=as_json(data), content_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{name}.json"'})


# What the readable copy calls each part and each field; the JSON keeps the field names.
SECTIONS = {
    "account": N_("Account"), "practices": N_("Practices"), "consultations": N_("Consultations"),
    "consultations_held": N_("Consultations you hold"), "invitations": N_("Invitations"),
    "call_attendances": N_("Calls you attended"), "login_sessions": N_("Where you are logged in"),
    "audit_entries": N_("Audit entries about you"),
}
FIELDS = {
    "username": N_("User name"), "email": N_("Email address"), "pending_email": N_("New email address"),
    "display_name": N_("Name"), "language": N_("Language"), "date_of_birth": N_("Date of birth"),
    "created_at": N_("Created"), "email_confirmed_at": N_("Email confirmed"),
    "password_changed_at": N_("Password changed"), "practice": N_("Practice"), "role": N_("Role"),
    "treats_patients": N_("Treats patients"),
    "since": N_("Since"), "deactivated_at": N_("Deactivated"), "id": N_("Number"), "title": N_("Title"),
    "starts_at": N_("Start"), "duration_minutes": N_("Minutes"), "state": N_("State"),
    "consultation_id": N_("Consultation"), "expires_at": N_("Valid until"), "tan_used_at": N_("TAN used"),
    "client_kind": N_("Device"), "joined_at": N_("Joined"), "left_at": N_("Left"),
    "last_seen_at": N_("Last active"), "user_agent": N_("Browser"), "action": N_("Action"),
    "object_kind": N_("Object"), "object_id": N_("Object number"), "by_them": N_("By you"),
}


ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


async def my_data(request: web.Request) -> web.StreamResponse:
    """JSON to download (art. 20), or with ?view=page the same as a readable page (art. 15)."""
    active = require_login(request)
    data = await request.app[services_key].personal_data.export(active.user)
    if request.query.get("view") != "page":
        return json_download(data, "smartpractice-my-data")
    zone, language = await reader_zone(request, active), request[language_key]

    def readable(row: dict) -> dict:
        # The download keeps ISO 8601 in UTC for machines; the page says times as people do.
        return {key: spoken(datetime.fromisoformat(value), zone, language) if isinstance(value, str)
                and ISO_TIME.match(value) else value for key, value in row.items()}

    sections = [(SECTIONS[key], [readable(row) for row in ([data[key]] if key == "account" else data[key])])
                for key in SECTIONS if key in data]
    return render(request, "my_data.html", {"sections": sections, "fields": FIELDS,
                                            "exported_at": spoken(datetime.fromisoformat(data["exported_at"]), zone, language)})


async def delete_account(request: web.Request) -> web.StreamResponse:
    active = require_login(request)
    services = request.app[services_key]
    form = await read_form(request)
    try:
        if field(form, "confirm", 8) != "yes":
            raise UserError("deletion_not_confirmed", N_("Please confirm that your account is to be deleted."))
        await services.login.verify_current_password(active.user, field(form, "current_password", 4096),
                                                     address=client_address(request))
        await services.personal_data.delete_account(active.user, actor=active.user.id)
    except UserError as error:
        return await account_page(request, active, delete_error=user_message(request, error), status=400)
    request[active_session_key] = None
    response = render(request, "account_deleted.html")
    clear_cookie(request, response, SESSION)
    return response


def _patient_id(request: web.Request) -> int:
    raw = request.match_info["user_id"]
    if not raw.isdigit() or len(raw) > 12:
        raise web.HTTPNotFound()
    return int(raw)


async def patient_data(request: web.Request) -> web.StreamResponse:
    active, membership = await require_admin(request, request.match_info["slug"])
    services = request.app[services_key]
    try:
        found = await services.patients.find(membership.practice, _patient_id(request))
    except PatientNotFound:
        raise web.HTTPNotFound() from None
    data = await services.personal_data.export(found.user, practice=membership.practice, actor=active.user.id)
    return json_download(data, f"patient-{found.user.id}")


async def delete_patient(request: web.Request) -> web.StreamResponse:
    active, membership = await require_admin(request, request.match_info["slug"])
    services = request.app[services_key]
    user_id = _patient_id(request)
    try:
        found = await services.patients.find(membership.practice, user_id)
    except PatientNotFound:
        raise web.HTTPNotFound() from None
    form = await read_form(request)
    if field(form, "confirm", 8) != "yes":
        context = {"practice": membership.practice, "patient": found, "new_password": None, "is_admin": True,
                   "error": user_message(request, UserError(
                       "deletion_not_confirmed", N_("Please confirm that the patient's data is to be deleted.")))}
        return render(request, "patients_detail.html", context, status=400)
    await services.personal_data.delete_patient(membership.practice, user_id, actor=active.user.id)
    return see_other(request.app.router["patients"].url_for(slug=membership.practice.slug).with_query(deleted="1"))
