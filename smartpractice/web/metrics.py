"""/metrics for Prometheus, behind a bearer token (docs/operations.md), and the
middleware that counts every request by route name and status; and the small app a
relay worker serves its own /metrics with."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from smartpractice.keys import (
    draining_key,
    jobs_key,
    mail_sender_key,
    metrics_key,
    services_key,
    settings_key,
)


def _route(request: web.Request) -> str:
    # The route's name, never the path: paths carry tokens and ids.
    try:
        route = request.match_info.route
    except (AttributeError, AssertionError):
        return "(unmatched)"
    return route.name or "(unmatched)" if route is not None else "(unmatched)"


@web.middleware
async def count_requests(request: web.Request, handler):
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        # A WebSocket's request lasts as long as the socket: it would drown the latency figures.
        if request.headers.get("Upgrade", "").lower() != "websocket":
            request.app[metrics_key].observe_request(_route(request), request.method, status,
                                                     time.perf_counter() - started)


def count_login(request: web.Request, kind: str, *, ok: bool) -> None:
    request.app[metrics_key].logins.labels(kind, "ok" if ok else "refused").inc()


def _refused(request: web.Request, token: str) -> web.Response | None:
    if not token:
        raise web.HTTPNotFound()
    given = request.headers.get("Authorization", "").encode()
    if not hmac.compare_digest(given, f"Bearer {token}".encode()):
        return web.Response(status=401, text="401: Unauthorized", headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return None


async def metrics(request: web.Request) -> web.StreamResponse:
    refused = _refused(request, request.app[settings_key].metrics_token)
    if refused is not None:
        return refused
    app = request.app
    calls, relay = app[services_key].calls.statistics()
    app[metrics_key].take_snapshot(
        sockets=app[draining_key].counts(), calls=calls, relay=relay,
        mails=await app[mail_sender_key].queue(), job_runs=app[jobs_key].runs,
    )
    return web.Response(body=app[metrics_key].exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def worker_metrics_app(token: str, exposition: Callable[[], bytes]) -> web.Application:
    """A relay worker's /metrics (and nothing else), behind the same token as the web's:
    the worker runs on host networking, so its port is reachable wherever the host is."""

    async def serve(request: web.Request) -> web.StreamResponse:
        refused = _refused(request, token)
        if refused is not None:
            return refused
        return web.Response(body=exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", serve, name="metrics")
    return app
