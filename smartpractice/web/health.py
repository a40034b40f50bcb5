"""Health for load balancers and orchestration."""

from __future__ import annotations

from aiohttp import web

from smartpractice.keys import services_key


async def healthz(request: web.Request) -> web.StreamResponse:
    if await request.app[services_key].operator.database_ready():
        return web.json_response({"status": "ok", "database": "ok"})
    return web.json_response({"status": "unavailable", "database": "unreachable"}, status=503)
