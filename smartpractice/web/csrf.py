"""CSRF protection (ASVS 3.5): an HMAC-signed double-submit token plus an Origin check."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from aiohttp import web

from smartpractice.keys import secret_key, settings_key
from smartpractice.web.cookies import CSRF, read_cookie, set_cookie
from smartpractice.web.forms import read_form

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
_new_nonce_key = web.RequestKey("csrf_new_nonce", str)


def _sign(request: web.Request, nonce: str) -> str:
    return hmac.new(request.app[secret_key].encode(), nonce.encode(), hashlib.sha256).hexdigest()


def csrf_token(request: web.Request) -> str:
    """The token for forms on this page; issues the browser a nonce cookie if it has none."""
    nonce = request.get(_new_nonce_key) or read_cookie(request, CSRF)
    if not nonce:
        nonce = request[_new_nonce_key] = secrets.token_urlsafe(24)
    return _sign(request, nonce)


def renew_csrf(request: web.Request, response: web.StreamResponse) -> None:
    """Give the browser a fresh nonce, e.g. at login, so an old token stops working."""
    request[_new_nonce_key] = secrets.token_urlsafe(24)
    send_nonce(request, response)


def send_nonce(request: web.Request, response: web.StreamResponse) -> None:
    """Set the nonce cookie if this request created one."""
    nonce = request.get(_new_nonce_key)
    if nonce:
        set_cookie(request, response, CSRF, nonce)


def _foreign(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin != request.app[settings_key].origin
    return request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none")


@web.middleware
async def csrf_protection(request: web.Request, handler):
    unrouted = request.match_info.http_exception is not None  # let 404 and 405 through as such
    if request.method in SAFE_METHODS or unrouted or request.path.startswith("/api/"):
        return await handler(request)
    if _foreign(request):
        raise web.HTTPForbidden(reason="foreign origin")
    nonce = read_cookie(request, CSRF)
    submitted = request.headers.get(HEADER)
    if submitted is None:
        submitted = (await read_form(request)).get(FIELD, "")
    if not nonce or not hmac.compare_digest(str(submitted), _sign(request, nonce)):
        raise web.HTTPForbidden(reason="csrf token")
    return await handler(request)
