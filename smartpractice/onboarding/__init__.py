"""Patients getting in: practice-created accounts, self-registration, TAN invitations."""
