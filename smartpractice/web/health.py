"""Health for load balancers and orchestration."""

from __future__ import annotations

import asyncio

from aiohttp import web

from smartpractice.keys import services_key


async def healthz(request: web.Request) -> web.StreamResponse:
    """200 while the database and the room state (Redis, when configured) answer; 503
    and which of them does not, otherwise."""
    services = request.app[services_key]
    database, rooms = await asyncio.gather(services.operator.database_ready(), services.waiting_room.state.ready())
    report = {"status": "ok" if database and rooms else "unavailable",
              "database": "ok" if database else "unreachable",
              "rooms": "ok" if rooms else "unreachable"}
    return web.json_response(report, status=200 if database and rooms else 503)
