"""Every service of the application, built once from the settings and shared by the web
layer, the jobs and the command line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.accounts.administration import AccountAdministration
from smartpractice.accounts.devices import DeviceCookies
from smartpractice.accounts.email_changes import EmailChanges
from smartpractice.accounts.login import Login
from smartpractice.accounts.password_resets import PasswordResets
from smartpractice.accounts.passwords import Passwords
from smartpractice.accounts.personal_data import PersonalData
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
from smartpractice.mail.queue import MailQueue
from smartpractice.onboarding.confirmations import Confirmations
from smartpractice.onboarding.guest_access import GuestAccess
from smartpractice.onboarding.invitations import Invitations
from smartpractice.onboarding.patients import Patients
from smartpractice.onboarding.registration import Registrations
from smartpractice.onboarding.signup import Signups
from smartpractice.onboarding.staff_invitations import StaffInvitations
from smartpractice.onboarding.tans import TanHasher
from smartpractice.practices.api_keys import ApiKeys
from smartpractice.practices.export import PracticeExport
from smartpractice.practices.offers import OfferRequests
from smartpractice.practices.operator import Operator
from smartpractice.practices.plans import Plans
from smartpractice.practices.practices import Practices
from smartpractice.practices.settings import PracticeConfiguration
from smartpractice.practices.staff import Staff
from smartpractice.rooms.call import Calls
from smartpractice.rooms.ice import IceServers
from smartpractice.rooms.relays import LocalRelays, RelayRooms
from smartpractice.rooms.state import InMemoryRoomState, RoomState
from smartpractice.rooms.waiting_room import WaitingRoom
from smartpractice.rtc import Relay, RelayNetwork
from smartpractice.scheduling.consultations import Consultations
from smartpractice.scheduling.reminders import Reminders


@dataclass(frozen=True)
class Services:
    """What the web layer, the jobs and the command line ask; the engine stays behind them
    (the app holds it under keys.engine_key for the mail sender and the jobs)."""

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
    personal_data: PersonalData
    practice_export: PracticeExport
    administration: AccountAdministration
    mail_queue: MailQueue


def relay_for(settings: Settings, ice_servers: IceServers) -> Relay:
    """The relay as the settings describe its network: ICE servers (fresh TURN
    credentials for each connection), port range and public address. A relay worker
    with a range of its own passes settings with that range."""
    return Relay(RelayNetwork(ice_servers=ice_servers.for_relay, ports=settings.relay_ports,
                              public_address=settings.relay_public_address))


def build_services(
    *, engine: AsyncEngine, settings: Settings, clock: Clock, secret: str, catalogs: Catalogs, links: Links,
    passwords: Passwords | None = None, room_state: RoomState | None = None, relays: RelayRooms | None = None,
    reader: Engine | None = None,
) -> Services:
    """`passwords` replaces the hasher the settings call for (tests hash cheaply).
    `room_state` is the app's (in memory, or Redis for several instances); without one,
    as for the command line, the rooms live in this process. `relays` likewise: the relay
    workers when configured, else the relay in this process."""
    passwords = passwords or Passwords(
        concurrency=settings.password_hash_concurrency, queue=settings.password_hash_queue,
        wait_seconds=settings.password_hash_wait_seconds,
    )
    outbox = Outbox(
        composer=MailComposer(catalogs=catalogs), clock=clock,
        domain=urlsplit(settings.base_url).hostname or "localhost",
    )
    sessions = Sessions(
        engine=engine, clock=clock, reader=reader,
        idle=timedelta(minutes=settings.session_idle_minutes),
        maximum=timedelta(hours=settings.session_max_hours),
    )
    users = Users(
        engine=engine, clock=clock, passwords=passwords, sessions=sessions,
        initial_password_lifetime=timedelta(days=settings.initial_password_days),
        outbox=outbox, links=links,
    )
    throttle = LoginThrottle(secret=secret)
    tokens = LinkTokens(clock=clock)
    confirmations = Confirmations(
        engine=engine, clock=clock, tokens=tokens, outbox=outbox, throttle=throttle, links=links
    )
    audit = Audit(engine=engine, clock=clock)
    plans = Plans(
        engine=engine, audit=audit, price_table=settings.price_table, self_service_seats=settings.self_service_seats
    )
    tan_hmac = TanHasher(secret)
    invitations = Invitations(
        engine=engine, clock=clock, outbox=outbox, links=links, tan_hmac=tan_hmac,
        lifetime=timedelta(hours=settings.tan_hours), audit=audit,
    )
    consultations = Consultations(
        engine=engine, clock=clock, outbox=outbox, links=links, invitations=invitations, catalogs=catalogs,
        audit=audit, mail_from=settings.mail_from, tan_grace=timedelta(minutes=settings.tan_grace_minutes),
    )
    login = Login(
        engine=engine, clock=clock, passwords=passwords, sessions=sessions, throttle=throttle,
        devices=DeviceCookies(secret=secret), audit=audit,
    )
    room_state = room_state or InMemoryRoomState()
    ice_servers = IceServers(settings=settings, clock=clock)
    second_factors = SecondFactors(
        engine=engine, clock=clock, throttle=throttle, outbox=outbox, links=links, audit=audit, secret=secret
    )
    waiting_room = WaitingRoom(engine=engine, clock=clock, state=room_state, audit=audit)
    calls = Calls(
        state=room_state, clock=clock, consultations=consultations,
        relays=relays or LocalRelays(relay_for(settings, ice_servers)),
    )
    room_state.on_expired(calls.announcer(waiting_room))
    personal_data = PersonalData(engine=engine, clock=clock, audit=audit)
    return Services(
        clock=clock,
        passwords=passwords,
        links=links,
        tokens=tokens,
        outbox=outbox,
        invitations=invitations,
        guest_access=GuestAccess(
            engine=engine, clock=clock, outbox=outbox, links=links, sessions=sessions, throttle=throttle,
            audit=audit, tan_hmac=tan_hmac,
        ),
        consultations=consultations,
        reminders=Reminders(
            engine=engine, clock=clock, consultations=consultations, leads_minutes=settings.reminder_minutes
        ),
        waiting_room=waiting_room,
        calls=calls,
        ice_servers=ice_servers,
        password_resets=PasswordResets(
            engine=engine, clock=clock, passwords=passwords, sessions=sessions, tokens=tokens, outbox=outbox,
            throttle=throttle, links=links, users=users,
        ),
        sessions=sessions,
        login=login,
        email_changes=EmailChanges(
            engine=engine, clock=clock, login=login, second_factors=second_factors, tokens=tokens,
            outbox=outbox, throttle=throttle, sessions=sessions, audit=audit, links=links,
        ),
        users=users,
        practices=Practices(engine=engine, clock=clock, users=users),
        api_keys=ApiKeys(engine=engine, clock=clock, audit=audit),
        confirmations=confirmations,
        patients=Patients(engine=engine, clock=clock, users=users, confirmations=confirmations, audit=audit),
        registrations=Registrations(
            engine=engine, clock=clock, passwords=passwords, confirmations=confirmations, outbox=outbox,
            throttle=throttle, links=links, audit=audit,
        ),
        audit=audit,
        second_factors=second_factors,
        plans=plans,
        staff=Staff(engine=engine, clock=clock, audit=audit, plans=plans),
        staff_invitations=StaffInvitations(
            engine=engine, clock=clock, passwords=passwords, sessions=sessions, outbox=outbox, links=links,
            audit=audit, plans=plans,
        ),
        practice_configuration=PracticeConfiguration(
            engine=engine, audit=audit, retention_ceiling=settings.retention_days
        ),
        signups=Signups(
            engine=engine, clock=clock, passwords=passwords, confirmations=confirmations, outbox=outbox,
            throttle=throttle, links=links, audit=audit, plans=plans,
        ),
        offer_requests=OfferRequests(
            engine=engine, clock=clock, outbox=outbox, throttle=throttle, operator_email=settings.operator_email
        ),
        operator=Operator(engine=engine, clock=clock, users=users, audit=audit),
        personal_data=personal_data,
        practice_export=PracticeExport(engine=engine, clock=clock, audit=audit),
        administration=AccountAdministration(engine=engine, users=users, sessions=sessions, throttle=throttle,
                                             audit=audit, personal_data=personal_data),
        mail_queue=MailQueue(engine=engine, clock=clock, audit=audit, outbox=outbox),
    )
