"""The whole URL map. Every route is named; handlers link by name."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from smartpractice.web import (
    account,
    api_key_pages,
    audit,
    auth,
    call,
    confirmation,
    consultations,
    email_change,
    guest,
    health,
    invitations,
    metrics,
    operator,
    pages,
    password_reset,
    patients,
    personal_data,
    practice,
    practice_settings,
    registration,
    rooms,
    second_factor,
    signup,
    staff,
    web_app,
)
from smartpractice.web.api import consultations as api_consultations
from smartpractice.web.api import invitations as api_invitations
from smartpractice.web.api import openapi as api_openapi
from smartpractice.web.api import patients as api_patients

STATIC = Path(__file__).parents[1] / "static"


def setup_routes(app: web.Application) -> None:
    add = app.router.add_route
    add("GET", "/", practice.home, name="home")
    add("GET", "/login", auth.login_form, name="login")
    add("POST", "/login", auth.login, name="login_submit")
    add("POST", "/login/tan", guest.code_login, name="tan_login_submit")
    add("GET", "/login/second-factor", second_factor.code_form, name="second_factor")
    add("POST", "/login/second-factor", second_factor.submit_code, name="second_factor_submit")
    add("POST", "/logout", auth.logout, name="logout")
    add("POST", "/logout/everywhere", auth.logout_everywhere, name="logout_everywhere")
    add("GET", "/account", account.account, name="account")
    add("POST", r"/account/sessions/{session_id:\d{1,18}}/end", account.end_session, name="session_end")
    add("GET", "/account/data", personal_data.my_data, name="my_data")
    add("POST", "/account/delete", personal_data.delete_account, name="account_delete")
    add("GET", "/account/password", account.password_form, name="password")
    add("POST", "/account/password", account.change_password, name="password_submit")
    add("POST", "/account/email", email_change.request_change, name="email_change")
    add("GET", "/account/email/sent", email_change.sent, name="email_change_sent")
    add("GET", "/email-change/{token}", email_change.confirm_form, name="email_change_link")
    add("POST", "/email-change/{token}", email_change.confirm, name="email_change_confirm")
    add("GET", "/account/two-factor", second_factor.overview, name="two_factor")
    add("POST", "/account/two-factor", second_factor.renew, name="two_factor_renew")
    add("GET", "/account/two-factor/setup", second_factor.setup_form, name="two_factor_setup")
    add("POST", "/account/two-factor/setup", second_factor.setup, name="two_factor_setup_submit")
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
    add("GET", "/p/{slug}/patients/{user_id}/data", personal_data.patient_data, name="patient_data")
    add("POST", "/p/{slug}/patients/{user_id}/delete", personal_data.delete_patient, name="patient_delete")
    add("GET", "/p/{slug}/registration", registration.page, name="registration")
    add("POST", "/p/{slug}/registration", registration.configure, name="registration_configure")
    add("POST", "/p/{slug}/registration/renew", registration.renew, name="registration_renew")
    add("GET", "/p/{slug}/registration/qr.svg", registration.qr_svg, name="registration_qr_svg")
    add("GET", "/p/{slug}/registration/qr.png", registration.qr_png, name="registration_qr_png")
    add("GET", "/register", registration.find_by_code, name="register_by_code")
    add("GET", "/register/{code}", registration.register_form, name="register")
    add("POST", "/register/{code}", registration.register, name="register_submit")
    add("GET", "/confirm", confirmation.resend_form, name="confirmation_resend")
    add("POST", "/confirm", confirmation.resend, name="confirmation_resend_submit")
    add("GET", "/confirm/{token}", confirmation.confirm_form, name="confirm_email")
    add("POST", "/confirm/{token}", confirmation.confirm, name="confirm_email_submit")
    add("GET", "/p/{slug}/invitations", invitations.invitations_page, name="invitations")
    add("POST", "/p/{slug}/invitations", invitations.invite, name="invitations_create")
    add("GET", r"/p/{slug}/invitations/{id:\d{1,18}}/sent", invitations.sent, name="invitation_sent")
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
    add("GET", r"/c/{id:\d{1,18}}/call", call.call_page, name="call")
    add("GET", r"/c/{id:\d{1,18}}/call/ws", call.call_socket, name="call_socket")
    add("GET", r"/c/{id:\d{1,18}}/ws", rooms.participant_socket, name="participant_socket")
    add("POST", r"/c/{id:\d{1,18}}/alive", rooms.alive, name="waiting_room_alive")
    add("GET", "/invitation/{token}", guest.tan_form, name="invitation_login")
    add("POST", "/invitation/{token}", guest.tan_login, name="invitation_login_submit")
    add("POST", "/invitation/{token}/new-tan", guest.new_tan, name="invitation_new_tan")
    add("GET", "/invitation/{token}/calendar.ics", guest.calendar, name="invitation_calendar")
    add("GET", "/device-check", guest.device_check, name="device_check")
    add("GET", "/guest", guest.guest_page, name="guest")
    add("GET", "/guest/tan", guest.resume_form, name="guest_tan")
    add("POST", "/guest/tan", guest.resume_login, name="guest_tan_submit")
    add("POST", "/guest/tan/new-tan", guest.resume_new_tan, name="guest_new_tan")
    add("GET", "/p/{slug}/staff", staff.page, name="staff")
    add("POST", "/p/{slug}/staff/invitations", staff.invite, name="staff_invite")
    add("POST", r"/p/{slug}/staff/invitations/{id:\d{1,18}}/revoke", staff.revoke_invitation, name="staff_invitation_revoke")
    add("POST", r"/p/{slug}/staff/{user_id:\d{1,18}}/role", staff.change_role, name="staff_role")
    add("POST", r"/p/{slug}/staff/{user_id:\d{1,18}}/deactivate", staff.deactivate, name="staff_deactivate")
    add("POST", r"/p/{slug}/staff/{user_id:\d{1,18}}/reactivate", staff.reactivate, name="staff_reactivate")
    add("GET", r"/p/{slug}/staff/{user_id:\d{1,18}}/data", staff.member_data, name="staff_data")
    add("POST", r"/p/{slug}/staff/{user_id:\d{1,18}}/delete", staff.delete_member, name="staff_delete")
    add("GET", "/staff-invitation/{token}", staff.accept_form, name="staff_invitation")
    add("POST", "/staff-invitation/{token}", staff.accept, name="staff_invitation_accept")
    add("GET", "/p/{slug}/settings", practice_settings.settings_page, name="practice_settings")
    add("POST", "/p/{slug}/settings", practice_settings.save_settings, name="practice_settings_submit")
    add("GET", "/p/{slug}/export", practice_settings.export_practice, name="practice_export")
    add("GET", "/p/{slug}/plan", practice_settings.plan_page, name="plan")
    add("POST", "/p/{slug}/plan", practice_settings.book_seats, name="plan_submit")
    add("GET", "/p/{slug}/api-keys", api_key_pages.page, name="api_keys")
    add("POST", "/p/{slug}/api-keys", api_key_pages.create, name="api_key_create")
    add("POST", r"/p/{slug}/api-keys/{id:\d{1,18}}/revoke", api_key_pages.revoke, name="api_key_revoke")
    add("GET", "/p/{slug}/audit", audit.practice_log, name="audit")
    add("GET", "/p/{slug}/audit.csv", audit.practice_csv, name="audit_csv")
    add("GET", "/pricing", signup.pricing, name="pricing")
    add("GET", "/signup", signup.signup_form, name="signup")
    add("POST", "/signup", signup.signup, name="signup_submit")
    add("GET", "/contact", signup.contact_form, name="contact")
    add("POST", "/contact", signup.contact, name="contact_submit")
    add("GET", "/operator", operator.overview, name="operator")
    add("POST", r"/operator/practices/{id:\d{1,18}}/suspend", operator.suspend, name="operator_suspend")
    add("POST", r"/operator/practices/{id:\d{1,18}}/reactivate", operator.reactivate, name="operator_reactivate")
    add("POST", r"/operator/practices/{id:\d{1,18}}/plan", operator.set_plan, name="operator_plan")
    add("GET", "/operator/audit", audit.operator_log, name="operator_audit")
    add("GET", "/operator/audit.csv", audit.operator_csv, name="operator_audit_csv")
    add("GET", "/privacy", pages.privacy, name="privacy")
    add("GET", "/terms", pages.terms, name="terms")
    add("GET", "/impressum", pages.impressum, name="impressum")
    add("GET", "/cookies", pages.cookies, name="cookies")
    add("GET", "/manifest.webmanifest", web_app.manifest, name="web_manifest")
    add("GET", "/service-worker.js", web_app.service_worker, name="service_worker")
    add("GET", "/offline", web_app.offline, name="offline")
    add("GET", "/healthz", health.healthz, name="healthz")
    add("GET", "/readyz", health.readyz, name="readyz")
    add("GET", "/metrics", metrics.metrics, name="metrics")
    add("GET", "/api/v1/openapi.json", api_openapi.openapi, name="api_openapi")
    add("POST", "/api/v1/patients", api_patients.create, name="api_patient_create")
    add("GET", "/api/v1/patients/{id:[0-9]+}", api_patients.patient, name="api_patient")
    add("POST", "/api/v1/invitations", api_invitations.create, name="api_invitation_create")
    add("GET", "/api/v1/invitations/{id:[0-9]+}", api_invitations.invitation, name="api_invitation")
    add("POST", "/api/v1/invitations/{id:[0-9]+}/revoke", api_invitations.revoke, name="api_invitation_revoke")
    add("POST", "/api/v1/consultations", api_consultations.create, name="api_consultation_create")
    add("GET", "/api/v1/consultations", api_consultations.by_day, name="api_consultations")
    add("GET", "/api/v1/consultations/{id:[0-9]+}", api_consultations.consultation, name="api_consultation")
    add("POST", "/api/v1/consultations/{id:[0-9]+}/cancel", api_consultations.cancel, name="api_consultation_cancel")
    add("POST", "/api/v1/consultations/{id:[0-9]+}/participants", api_consultations.add_participant,
        name="api_consultation_participants")
    app.router.add_static("/static/", STATIC, name="static")
