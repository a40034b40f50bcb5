"""Typed keys for what the application and each request carry."""

from __future__ import annotations

import gettext
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.accounts.email_changes import EmailChanges
from smartpractice.accounts.login import Login
from smartpractice.accounts.password_resets import PasswordResets
from smartpractice.accounts.passwords import Passwords
from smartpractice.accounts.second_factor import SecondFactors
from smartpractice.accounts.sessions import ActiveSession, GuestSession, Sessions
from smartpractice.accounts.tokens import LinkTokens
from smartpractice.accounts.users import Users
from smartpractice.api_keys import ApiKeys
from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.config import Settings
from smartpractice.i18n import Catalogs
from smartpractice.jobs import JobRunner
from smartpractice.mail.outbox import Outbox
from smartpractice.offers import OfferRequests
from smartpractice.onboarding.confirmations import Confirmations
from smartpractice.onboarding.invitations import Invitations
from smartpractice.onboarding.patients import Patients
from smartpractice.onboarding.registration import Registrations
from smartpractice.onboarding.signup import Signups
from smartpractice.onboarding.staff_invitations import StaffInvitations
from smartpractice.operator import Operator
from smartpractice.plans import Plans
from smartpractice.practice_settings import PracticeConfiguration
from smartpractice.practices import Practices
from smartpractice.rooms.call import Calls
from smartpractice.rooms.waiting_room import WaitingRoom
from smartpractice.rtc.ice import IceServers
from smartpractice.scheduling.consultations import Consultations
from smartpractice.scheduling.reminders import Reminders
from smartpractice.staff import Staff
from smartpractice.web.links import Links


@dataclass(frozen=True)
class Services:
    engine: AsyncEngine
    clock: Clock
    passwords: Passwords
    links: Links
    tokens: LinkTokens
    outbox: Outbox
    password_resets: PasswordResets
    invitations: Invitations
    sessions: Sessions
    login: Login
    email_changes: EmailChanges
    users: Users
    practices: Practices
    api_keys: ApiKeys
    confirmations: Confirmations
    patients: Patients
    registrations: Registrations
    consultations: Consultations
    reminders: Reminders
    waiting_room: WaitingRoom
    calls: Calls
    ice_servers: IceServers
    audit: Audit
    second_factors: SecondFactors
    plans: Plans
    staff: Staff
    staff_invitations: StaffInvitations
    practice_configuration: PracticeConfiguration
    signups: Signups
    offer_requests: OfferRequests
    operator: Operator


settings_key = web.AppKey("settings", Settings)
clock_key = web.AppKey("clock", Clock)
catalogs_key = web.AppKey("catalogs", Catalogs)
secret_key = web.AppKey("secret", str)
services_key = web.AppKey("services", Services)
jobs_key = web.AppKey("jobs", JobRunner)

active_session_key = web.RequestKey("active_session", ActiveSession | None)
guest_session_key = web.RequestKey("guest_session", GuestSession | None)
language_key = web.RequestKey("language", str)
translations_key = web.RequestKey("translations", gettext.NullTranslations)
