"""Who is asking: the client address, believing X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

from aiohttp import web

from smartpractice.keys import settings_key


def client_address(request: web.Request) -> str:
    peer = request.remote or "unknown"
    settings = request.app[settings_key]
    if not settings.is_trusted_proxy(peer):
        return peer
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
    # The rightmost address not added by one of our own proxies is the client.
    for hop in reversed(hops):
        if not settings.is_trusted_proxy(hop):
            return hop
    return peer
