"""The application factory."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from smartpractice.accounts.passwords import Passwords
from smartpractice.clock import Clock
from smartpractice.config import Settings
from smartpractice.draining import Draining
from smartpractice.i18n import Catalogs
from smartpractice.jobs.retention import purge_expired
from smartpractice.jobs.runner import JobRunner
from smartpractice.keys import (
    catalogs_key,
    clock_key,
    draining_key,
    engine_key,
    jobs_key,
    mail_sender_key,
    metrics_key,
    relays_key,
    room_state_key,
    secret_key,
    services_key,
    settings_key,
)
from smartpractice.mail.sender import MailSender
from smartpractice.metrics import Metrics
from smartpractice.rooms import redis_state
from smartpractice.rooms.memory_lease import MemoryRoomsLease
from smartpractice.rooms.relay_routing import WorkerRelays
from smartpractice.rooms.state import InMemoryRoomState
from smartpractice.services import Services, build_services
from smartpractice.storage.engine import check_schema, create_engine, create_loop_reader, upgrade
from smartpractice.web.api.errors import api_errors
from smartpractice.web.csrf import csrf_protection
from smartpractice.web.links import RouterLinks
from smartpractice.web.metrics import count_requests
from smartpractice.web.middlewares import (
    error_pages,
    hide_server_version,
    password_change_gate,
    request_context,
    request_ids,
    second_factor_gate,
    security_headers,
    sendings_complete,
)
from smartpractice.web.responses import setup_templates
from smartpractice.web.routes import setup_routes
from smartpractice.web.web_app import setup_web_app

log = logging.getLogger(__name__)


async def prepare_database(settings: Settings) -> None:
    """Upgrade where allowed, then refuse to go on with a schema the code does not match."""
    if settings.auto_migrate == "always" or (settings.auto_migrate == "sqlite" and settings.is_sqlite):
        await upgrade(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        await check_schema(engine)
    finally:
        await engine.dispose()


async def _database(app: web.Application, *, passwords: Passwords | None) -> AsyncIterator[None]:
    settings = app[settings_key]
    await prepare_database(settings)
    app[engine_key] = engine = create_engine(settings.database_url)
    reader = create_loop_reader(settings.database_url)
    app[services_key] = services = build_services(
        engine=engine, settings=settings, clock=app[clock_key], secret=app[secret_key],
        catalogs=app[catalogs_key], links=RouterLinks(router=app.router, base_url=settings.base_url),
        passwords=passwords,
        room_state=app[room_state_key], relays=app.get(relays_key), reader=reader,
    )
    # The dummy hash answers unknown users; made now, the first of them waits no longer.
    await services.passwords.verify_dummy("")
    yield
    await services.calls.close()
    await engine.dispose()
    if reader is not None:
        reader.dispose()
    if passwords is None:  # the app's own hasher; one handed in belongs to the caller
        services.passwords.close()


async def _room_state(app: web.Application) -> AsyncIterator[None]:
    """Waiting rooms and calls: in this process, or shared with other instances in Redis.
    A Redis that does not answer yet is logged, not fatal: the instance retries."""
    settings = app[settings_key]
    if not settings.redis_url:
        app[room_state_key] = InMemoryRoomState()
        yield
        return
    client = redis_state.connect(settings.redis_url)
    state = redis_state.RedisRoomState(client, prefix=settings.redis_prefix, name=redis_state.where(settings.redis_url))
    app[room_state_key] = state
    await state.start()
    if settings.relay_workers:
        # Closed with the calls (services.calls.close), before the room state goes.
        app[relays_key] = relays = WorkerRelays(client, state, prefix=settings.redis_prefix)
        await relays.start()
    try:
        yield
    finally:
        await state.close()
        await client.aclose()


async def _rooms_lease(app: web.Application) -> AsyncIterator[None]:
    """Without Redis, this instance holds the database's waiting rooms and calls alone
    (rooms/memory_lease.py): taken before any work starts, given up at the stop."""
    lease = MemoryRoomsLease(engine=app[engine_key], clock=app[clock_key])
    await lease.take()
    yield
    await lease.release()


async def _mail_sender(app: web.Application) -> AsyncIterator[None]:
    services = app[services_key]
    sender = app[mail_sender_key] = MailSender(
        engine=app[engine_key], clock=services.clock, settings=app[settings_key], wake=services.outbox.wake
    )
    sender.start()
    yield
    await sender.finish(app[draining_key].left())


async def _housekeeping(services: Services) -> None:
    await services.reminders.send_due()
    await services.waiting_room.end_abandoned()


async def _jobs(app: web.Application) -> AsyncIterator[None]:
    services, settings, engine = app[services_key], app[settings_key], app[engine_key]
    runner = app[jobs_key] = JobRunner(engine=engine, clock=services.clock)
    if settings.purge_interval_minutes:
        runner.add(
            "purge",
            timedelta(minutes=settings.purge_interval_minutes),
            lambda stopping: purge_expired(engine, settings, services.clock, stopping=stopping),
        )
    if settings.housekeeping_seconds:
        runner.add("housekeeping", timedelta(seconds=settings.housekeeping_seconds),
                   lambda stopping: _housekeeping(services))
    task = asyncio.create_task(runner.run(), name="jobs") if runner.jobs else None
    yield
    runner.stop()
    if task is not None:
        # The purge returns between two batches once asked to stop; the timeout is the last resort.
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, app[draining_key].left())


def create_app(
    settings: Settings, *, clock: Clock | None = None, passwords: Passwords | None = None,
    sole_instance: bool = False,
) -> web.Application:
    """`clock` and `passwords` replace the real ones; tests freeze time and hash cheaply.
    `sole_instance` (what `serve` asks for): without Redis, refuse to start while another
    instance serves the rooms of the same database."""
    hide_server_version()
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            sendings_complete, request_ids, count_requests, error_pages, api_errors, request_context, csrf_protection, second_factor_gate, password_change_gate,
        ],
    )
    app[settings_key] = settings
    app[clock_key] = clock or Clock()
    app[secret_key] = settings.resolved_secret_key()
    app[catalogs_key] = Catalogs()
    app[metrics_key] = Metrics()
    app[draining_key] = draining = Draining(stop_seconds=settings.stop_seconds)
    setup_templates(app)
    setup_web_app(app)
    setup_routes(app)
    app.cleanup_ctx.append(_room_state)
    app.cleanup_ctx.append(functools.partial(_database, passwords=passwords))
    if sole_instance and not settings.redis_url:
        app.cleanup_ctx.append(_rooms_lease)
    app.cleanup_ctx.append(_mail_sender)
    app.cleanup_ctx.append(_jobs)
    app.on_response_prepare.append(security_headers)
    # aiohttp has stopped listening by then; the requests in hand get `stop_seconds` after.
    app.on_shutdown.append(lambda app: draining.start())
    return app
