"""The whole URL map. Every route is named; handlers link by name."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from smartpractice.web import (
    account,
    auth,
    confirmation,
    consultations,
    guest,
    health,
    invitations,
    pages,
    password_reset,
    patients,
    practice,
    registration,
    rooms,
)
from smartpractice.web.api import invitations as api_invitations
from smartpractice.web.api import openapi as api_openapi
from smartpractice.web.api import patients as api_patients

STATIC = Path(__file__).resolve().parents[1] / "static"


def setup_routes(app: web.Application) -> None:
    add = app.router.add_route
    add("GET", "/", practice.home, name="home")
    add("GET", "/login", auth.login_form, name="login")
    add("POST", "/login", auth.login, name="login_submit")
    add("POST", "/logout", auth.logout, name="logout")
    add("POST", "/logout/everywhere", auth.logout_everywhere, name="logout_everywhere")
    add("GET", "/account", account.account, name="account")
    add("POST", r"/account/sessions/{session_id:\d{1,18}}/end", account.end_session, name="session_end")
    add("GET", "/account/password", account.password_form, name="password")
    add("POST", "/account/password", account.change_password, name="password_submit")
    add("POST", "/language", account.set_language, name="language")
    add("GET", "/password-reset", password_reset.request_form, name="password_reset")
    add("POST", "/password-reset", password_reset.request_link, name="password_reset_request")
    add("GET", "/password-reset/{token}", password_reset.new_password_form, name="password_reset_link")
    add("POST", "/password-reset/{token}", password_reset.set_new_password, name="password_reset_submit")
    add("GET", "/p/{slug}/", practice.dashboard, name="dashboard")
    add("GET", "/p/{slug}/patients", patients.patients, name="patients")
    add("POST", "/p/{slug}/patients", patients.create, name="patient_create")
    add("GET", "/p/{slug}/patients/new", patients.new_form, name="patient_new")
    add("GET", "/p/{slug}/patients/{user_id}", patients.patient, name="patient")
    add("POST", "/p/{slug}/patients/{user_id}/initial-password", patients.new_initial_password, name="patient_initial_password")
    add("GET", "/p/{slug}/registration", registration.page, name="registration")
    add("POST", "/p/{slug}/registration", registration.configure, name="registration_configure")
    add("POST", "/p/{slug}/registration/renew", registration.renew, name="registration_renew")
    add("GET", "/p/{slug}/registration/qr.svg", registration.qr_svg, name="registration_qr_svg")
    add("GET", "/p/{slug}/registration/qr.png", registration.qr_png, name="registration_qr_png")
    add("GET", "/register/{code}", registration.register_form, name="register")
    add("POST", "/register/{code}", registration.register, name="register_submit")
    add("GET", "/confirm", confirmation.resend_form, name="confirmation_resend")
    add("POST", "/confirm", confirmation.resend, name="confirmation_resend_submit")
    add("GET", "/confirm/{token}", confirmation.confirm_form, name="confirm_email")
    add("POST", "/confirm/{token}", confirmation.confirm, name="confirm_email_submit")
    add("GET", "/p/{slug}/invitations", invitations.invitations_page, name="invitations")
    add("POST", "/p/{slug}/invitations", invitations.invite, name="invitations_create")
    add("POST", r"/p/{slug}/invitations/{id:\d{1,18}}/revoke", invitations.revoke, name="invitation_revoke")
    add("POST", r"/p/{slug}/invitations/{id:\d{1,18}}/reissue", invitations.reissue, name="invitation_reissue")
    add("POST", "/p/{slug}/invitations/tan-delivery", invitations.set_tan_delivery, name="tan_delivery")
    consultation = r"/p/{slug}/consultations/{id:\d{1,18}}"
    add("GET", "/p/{slug}/consultations", consultations.agenda, name="consultations")
    add("POST", "/p/{slug}/consultations", consultations.create, name="consultation_create")
    add("GET", "/p/{slug}/consultations/new", consultations.new_form, name="consultation_new")
    add("GET", "/p/{slug}/consultations/past", consultations.past, name="consultations_past")
    add("GET", consultation, consultations.consultation, name="consultation")
    add("POST", consultation, consultations.reschedule, name="consultation_update")
    add("POST", consultation + "/cancel", consultations.cancel, name="consultation_cancel")
    add("POST", consultation + "/participants", consultations.add_participant, name="consultation_participants")
    add("POST", consultation + "/end", rooms.end, name="consultation_end")
    add("GET", "/p/{slug}/waiting-room/ws", rooms.staff_socket, name="waiting_room_socket")
    add("GET", r"/c/{id:\d{1,18}}", rooms.waiting_page, name="waiting_room")
    add("GET", r"/c/{id:\d{1,18}}/call", rooms.call_page, name="call")
    add("GET", r"/c/{id:\d{1,18}}/ws", rooms.participant_socket, name="participant_socket")
    add("GET", "/invitation/{token}", guest.tan_form, name="invitation_login")
    add("POST", "/invitation/{token}", guest.tan_login, name="invitation_login_submit")
    add("GET", "/guest", guest.guest_page, name="guest")
    add("GET", "/privacy", pages.privacy, name="privacy")
    add("GET", "/terms", pages.terms, name="terms")
    add("GET", "/cookies", pages.cookies, name="cookies")
    add("GET", "/healthz", health.healthz, name="healthz")
    add("GET", "/api/v1/openapi.json", api_openapi.openapi, name="api_openapi")
    add("POST", "/api/v1/patients", api_patients.create, name="api_patient_create")
    add("GET", "/api/v1/patients/{id:[0-9]+}", api_patients.patient, name="api_patient")
    add("POST", "/api/v1/invitations", api_invitations.create, name="api_invitation_create")
    add("GET", "/api/v1/invitations/{id:[0-9]+}", api_invitations.invitation, name="api_invitation")
    add("POST", "/api/v1/invitations/{id:[0-9]+}/revoke", api_invitations.revoke, name="api_invitation_revoke")
    app.router.add_static("/static/", STATIC, name="static")
