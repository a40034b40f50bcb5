"""The application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import urlsplit

from aiohttp import web

from smartpractice.accounts.email_changes import EmailChanges
from smartpractice.accounts.login import Login
from smartpractice.accounts.password_resets import PasswordResets
from smartpractice.accounts.passwords import Passwords
from smartpractice.accounts.second_factor import SecondFactors
from smartpractice.accounts.sessions import Sessions
from smartpractice.accounts.throttle import LoginThrottle
from smartpractice.accounts.tokens import LinkTokens
from smartpractice.accounts.users import Users
from smartpractice.api_keys import ApiKeys
from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.config import Settings
from smartpractice.i18n import Catalogs
from smartpractice.jobs import JobRunner
from smartpractice.keys import (
    Services,
    catalogs_key,
    clock_key,
    jobs_key,
    secret_key,
    services_key,
    settings_key,
)
from smartpractice.mail.compose import MailComposer
from smartpractice.mail.outbox import Outbox
from smartpractice.mail.sender import MailSender
from smartpractice.middlewares import (
    error_pages,
    password_change_gate,
    request_context,
    second_factor_gate,
    security_headers,
)
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
from smartpractice.retention import purge_expired
from smartpractice.rooms.call import Calls
from smartpractice.rooms.state import InMemoryRoomState
from smartpractice.rooms.waiting_room import WaitingRoom
from smartpractice.routes import setup_routes
from smartpractice.rtc import Relay
from smartpractice.rtc.ice import IceServers
from smartpractice.scheduling.consultations import Consultations
from smartpractice.scheduling.reminders import Reminders
from smartpractice.staff import Staff
from smartpractice.storage.engine import check_schema, create_engine, upgrade
from smartpractice.web.api.errors import api_errors
from smartpractice.web.csrf import csrf_protection
from smartpractice.web.links import Links
from smartpractice.web.responses import setup_templates

log = logging.getLogger(__name__)

SENDER_STOP_SECONDS = 10
# The purge returns between two batches once asked to stop; this is the last resort.
JOBS_STOP_SECONDS = 10


def build_services(
    engine, settings: Settings, clock: Clock, secret: str, catalogs: Catalogs, links: Links
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
    invitations = Invitations(
        engine, clock, outbox, links, sessions, throttle,
        secret=secret, lifetime=timedelta(hours=settings.tan_hours), audit=audit,
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


async def prepare_database(settings: Settings) -> None:
    """Upgrade where allowed, then refuse to go on with a schema the code does not match."""
    if settings.auto_migrate == "always" or (settings.auto_migrate == "sqlite" and settings.is_sqlite):
        await upgrade(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        await check_schema(engine)
    finally:
        await engine.dispose()


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    await prepare_database(settings)
    engine = create_engine(settings.database_url)
    links = Links(app.router, settings.base_url)
    app[services_key] = services = build_services(
        engine, settings, app[clock_key], app[secret_key], app[catalogs_key], links
    )
    # The dummy hash answers unknown users; made now, the first of them waits no longer.
    await services.passwords.verify_dummy("")
    yield
    await services.calls.close()
    await engine.dispose()


async def _mail_sender(app: web.Application) -> AsyncIterator[None]:
    services = app[services_key]
    sender = MailSender(services.engine, services.clock, app[settings_key], services.outbox.wake)
    task = asyncio.create_task(sender.run(), name="mail sender")
    yield
    sender.stop()
    # wait_for cancels the task if the mail in hand takes longer than this.
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(task, SENDER_STOP_SECONDS)


async def _housekeeping(services: Services) -> None:
    await services.reminders.send_due()
    await services.waiting_room.end_abandoned()


async def _jobs(app: web.Application) -> AsyncIterator[None]:
    services, settings = app[services_key], app[settings_key]
    runner = app[jobs_key] = JobRunner(services.engine, services.clock)
    if settings.purge_interval_minutes:
        runner.add(
            "purge",
            timedelta(minutes=settings.purge_interval_minutes),
            lambda stopping: purge_expired(services.engine, settings, services.clock, stopping=stopping),
        )
    if settings.housekeeping_seconds:
        runner.add("housekeeping", timedelta(seconds=settings.housekeeping_seconds),
                   lambda stopping: _housekeeping(services))
    task = asyncio.create_task(runner.run(), name="jobs") if runner.jobs else None
    yield
    runner.stop()
    if task is not None:
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, JOBS_STOP_SECONDS)


def create_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            error_pages, api_errors, request_context, csrf_protection, second_factor_gate, password_change_gate,
        ],
    )
    app[settings_key] = settings
    app[clock_key] = clock or Clock()
    app[secret_key] = settings.resolved_secret_key()
    app[catalogs_key] = Catalogs()
    setup_templates(app)
    setup_routes(app)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_mail_sender)
    app.cleanup_ctx.append(_jobs)
    app.on_response_prepare.append(security_headers)
    return app
