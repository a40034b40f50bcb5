"""Health for load balancers and orchestration: /healthz (liveness) and /readyz
(readiness: may this instance be given new work?)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from smartpractice.keys import draining_key, mail_sender_key, services_key


async def _database_and_rooms(request: web.Request) -> tuple[bool, bool]:
    services = request.app[services_key]
    database, rooms = await asyncio.gather(services.operator.database_ready(), services.waiting_room.state.ready())
    return database, rooms


async def healthz(request: web.Request) -> web.StreamResponse:
    """200 while the database and the room state (Redis, when configured) answer; 503
    and which of them does not, otherwise."""
    database, rooms = await _database_and_rooms(request)
    report = {"status": "ok" if database and rooms else "unavailable",
              "database": "ok" if database else "unreachable",
              "rooms": "ok" if rooms else "unreachable"}
    return web.json_response(report, status=200 if database and rooms else 503)


async def readyz(request: web.Request) -> web.StreamResponse:
    """What /healthz checks, plus: the instance is not stopping, and the mail queue
    moves (no mail has been due for long). 503 names what is not ready."""
    draining = request.app[draining_key].started
    database, rooms = await _database_and_rooms(request)
    mail = database and await request.app[mail_sender_key].moving()
    ready = database and rooms and mail and not draining
    report = {"status": "ready" if ready else "not_ready",
              "database": "ok" if database else "unreachable",
              "rooms": "ok" if rooms else "unreachable",
              "mail": "ok" if mail else ("stalled" if database else "unknown"),
              "stopping": draining}
    return web.json_response(report, status=200 if ready else 503)
