"""What the audit log's action and object names mean, in the reader's language. The
log stores short English identifiers (stable for the CSV export and filters); the page
shows these labels. tests/test_audit.py fails when an action recorded anywhere in the
code has no label here."""

from __future__ import annotations

from smartpractice.i18n import N_

ACTIONS = {
    "account_deleted": N_("Account deleted"),
    "account_unlocked_by_operator": N_("Account unlocked by the operator"),
    "admitted": N_("Let in from the waiting room"),
    "api_key_created": N_("API key created"),
    "api_key_revoked": N_("API key revoked"),
    "consultation_cancelled": N_("Consultation cancelled"),
    "consultation_changed": N_("Consultation changed"),
    "consultation_created": N_("Consultation scheduled"),
    "consultation_ended": N_("Consultation ended"),
    "email_change_requested": N_("Change of email address requested"),
    "email_changed": N_("Email address changed"),
    "guest_login": N_("Guest entered with a TAN"),
    "invitation_locked": N_("Invitation locked after wrong TANs"),
    "invitation_tan_voided": N_("TAN voided after five wrong tries"),
    "invitation_reissued": N_("Invitation sent again"),
    "invitation_revoked": N_("Invitation withdrawn"),
    "invitation_sent": N_("Invitation sent"),
    "invitation_tan_sent": N_("New TAN sent"),
    "login": N_("Logged in"),
    "login_failed": N_("Failed login"),
    "mail_retried": N_("Mail sent again"),
    "member_deactivated": N_("Member deactivated"),
    "member_reactivated": N_("Member reactivated"),
    "operator_created": N_("Operator account created"),
    "participant_added": N_("Participant added"),
    "password_reset_by_operator": N_("Password reset by the operator"),
    "patient_created": N_("Patient created"),
    "patient_deleted": N_("Patient deleted"),
    "patient_initial_password_issued": N_("New initial password for a patient"),
    "plan_changed": N_("Plan changed"),
    "practice_deleted": N_("Practice deleted"),
    "personal_data_exported": N_("Personal data exported"),
    "practice_exported": N_("Practice data exported"),
    "practice_reactivated": N_("Practice reactivated"),
    "practice_signed_up": N_("Practice signed up"),
    "practice_suspended": N_("Practice suspended"),
    "recovery_code_used": N_("Recovery code used"),
    "registration_link_renewed": N_("Registration link renewed"),
    "role_changed": N_("Role changed"),
    "schema_downgraded": N_("Database schema downgraded"),
    "seats_changed": N_("Seats changed"),
    "second_factor_enrolled": N_("Authenticator app set up"),
    "second_factor_renewed": N_("Authenticator app replaced"),
    "second_factor_reset_by_operator": N_("Second factor reset by the operator"),
    "settings_changed": N_("Settings changed"),
    "staff_deleted": N_("Staff account deleted"),
    "staff_invitation_revoked": N_("Staff invitation withdrawn"),
    "staff_invited": N_("Staff member invited"),
    "staff_joined": N_("Staff member joined"),
    "test_mail_sent": N_("Test mail sent"),
}

OBJECTS = {
    "api_key": N_("API key"),
    "consultation": N_("Consultation"),
    "invitation": N_("Invitation"),
    "mail": N_("Mail"),
    "practice": N_("Practice"),
    "schema": N_("Database schema"),
    "second_factor": N_("Second factor"),
    "staff_invitation": N_("Staff invitation"),
    "user": N_("Account"),
}
