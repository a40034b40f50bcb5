"""Every service of the application, built once from the settings and shared by the web
layer, the jobs and the command line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.accounts.email_changes import EmailChanges
from smartpractice.accounts.login import Login
from smartpractice.accounts.password_resets import PasswordResets
from smartpractice.accounts.passwords import Passwords
from smartpractice.accounts.second_factor import SecondFactors
from smartpractice.accounts.sessions import Sessions
from smartpractice.accounts.throttle import LoginThrottle
from smartpractice.accounts.tokens import LinkTokens
from smartpractice.accounts.users import Users
from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.config import Settings
from smartpractice.i18n import Catalogs
from smartpractice.links import Links
from smartpractice.mail.compose import MailComposer
from smartpractice.mail.outbox import Outbox
from smartpractice.onboarding.confirmations import Confirmations
from smartpractice.onboarding.guest_access import GuestAccess
from smartpractice.onboarding.invitations import Invitations
from smartpractice.onboarding.patients import Patients
from smartpractice.onboarding.registration import Registrations
from smartpractice.onboarding.signup import Signups
from smartpractice.onboarding.staff_invitations import StaffInvitations
from smartpractice.onboarding.tans import TanHasher
from smartpractice.practices.api_keys import ApiKeys
from smartpractice.practices.offers import OfferRequests
from smartpractice.practices.operator import Operator
from smartpractice.practices.plans import Plans
from smartpractice.practices.practices import Practices
from smartpractice.practices.settings import PracticeConfiguration
from smartpractice.practices.staff import Staff
from smartpractice.rooms.call import Calls
from smartpractice.rooms.ice import IceServers
from smartpractice.rooms.state import InMemoryRoomState
from smartpractice.rooms.waiting_room import WaitingRoom
from smartpractice.rtc import Relay
from smartpractice.scheduling.consultations import Consultations
from smartpractice.scheduling.reminders import Reminders


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
    guest_access: GuestAccess
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


def build_services(
    engine: AsyncEngine, settings: Settings, clock: Clock, secret: str, catalogs: Catalogs, links: Links
) -> Services:
    passwords = Passwords(settings.password_hash_concurrency)
    outbox = Outbox(MailComposer(catalogs), clock, domain=urlsplit(settings.base_url).hostname or "localhost")
    sessions = Sessions(
        engine,
        clock,
        idle=timedelta(minutes=settings.session_idle_minutes),
        maximum=timedelta(hours=settings.session_max_hours),
    )
    users = Users(
        engine, clock, passwords, sessions,
        initial_password_lifetime=timedelta(days=settings.initial_password_days),
        outbox=outbox, links=links,
    )
    throttle = LoginThrottle(secret)
    tokens = LinkTokens(clock)
    confirmations = Confirmations(engine, clock, tokens, outbox, throttle, links)
    audit = Audit(engine, clock)
    plans = Plans(engine, audit, price_table=settings.price_table, self_service_seats=settings.self_service_seats)
    tan_hmac = TanHasher(secret)
    invitations = Invitations(
        engine, clock, outbox, links, tan_hmac=tan_hmac, lifetime=timedelta(hours=settings.tan_hours), audit=audit,
    )
    consultations = Consultations(
        engine, clock, outbox, links, invitations, catalogs, audit,
        mail_from=settings.mail_from, tan_grace=timedelta(minutes=settings.tan_grace_minutes),
    )
    login = Login(engine, clock, passwords, sessions, throttle, audit)
    room_state = InMemoryRoomState()
    ice_servers = IceServers(settings, clock)
    second_factors = SecondFactors(engine, clock, throttle, outbox, links, audit, secret=secret)
    return Services(
        engine=engine,
        clock=clock,
        passwords=passwords,
        links=links,
        tokens=tokens,
        outbox=outbox,
        invitations=invitations,
        guest_access=GuestAccess(engine, clock, outbox, links, sessions, throttle, audit, tan_hmac=tan_hmac),
        consultations=consultations,
        reminders=Reminders(engine, clock, consultations, settings.reminder_minutes),
        waiting_room=WaitingRoom(engine, clock, room_state, audit),
        calls=Calls(room_state, clock, consultations, Relay(ice_servers.for_relay())),
        ice_servers=ice_servers,
        password_resets=PasswordResets(engine, clock, passwords, sessions, tokens, outbox, throttle, links, users),
        sessions=sessions,
        login=login,
        email_changes=EmailChanges(
            engine, clock, login, second_factors, tokens, outbox, throttle, sessions, audit, links
        ),
        users=users,
        practices=Practices(engine, clock, users),
        api_keys=ApiKeys(engine, clock, audit),
        confirmations=confirmations,
        patients=Patients(engine, clock, users, confirmations, audit),
        registrations=Registrations(engine, clock, passwords, confirmations, outbox, throttle, links, audit),
        audit=audit,
        second_factors=second_factors,
        plans=plans,
        staff=Staff(engine, clock, audit, plans),
        staff_invitations=StaffInvitations(engine, clock, passwords, sessions, outbox, links, audit, plans),
        practice_configuration=PracticeConfiguration(engine, audit, retention_ceiling=settings.retention_days),
        signups=Signups(engine, clock, passwords, confirmations, outbox, throttle, links, audit, plans),
        offer_requests=OfferRequests(engine, clock, outbox, throttle, operator_email=settings.operator_email),
        operator=Operator(engine, clock, users, audit),
    )
