"""Health for load balancers and orchestration."""

from __future__ import annotations

from aiohttp import web

from smartpractice.keys import services_key
from smartpractice.storage.engine import ping


async def healthz(request: web.Request) -> web.StreamResponse:
    if await ping(request.app[services_key].engine):
        return web.json_response({"status": "ok", "database": "ok"})
    return web.json_response({"status": "unavailable", "database": "unreachable"}, status=503)
