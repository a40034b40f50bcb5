"""Error pages, security headers, and the session and language of each request."""

from __future__ import annotations

import asyncio
import logging
import secrets

from aiohttp import web, web_response

from smartpractice.accounts.sessions import ActiveSession, GuestSession
from smartpractice.errors import Busy, busy_database
from smartpractice.i18n import DEFAULT_LANGUAGE, LANGUAGES, negotiate
from smartpractice.keys import (
    active_session_key,
    catalogs_key,
    client_gone_key,
    guest_session_key,
    language_key,
    services_key,
    settings_key,
    translations_key,
)
from smartpractice.logs import REQUEST_ID, request_id_key
from smartpractice.web.api.errors import http_error_response
from smartpractice.web.cookies import LANGUAGE, SESSION, read_cookie
from smartpractice.web.responses import render

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
PERMISSIONS_POLICY = (
    "camera=(self), microphone=(self), display-capture=(self), speaker-selection=(self), "
    "geolocation=(), payment=(), usb=(), interest-cohort=()"
)
# The web app's files hold nothing of anyone's, and a redirect would break them: a service
# worker script must not be redirected, and the worker would keep the page it landed on.
WEB_APP = frozenset({"web_manifest", "service_worker", "offline"})
# Routes a user with an initial password may still reach before choosing their own. The
# second factor comes first: staff whose password the operator reset keep their app.
OPEN_DURING_PASSWORD_CHANGE = WEB_APP | frozenset(
    {"password", "password_submit", "second_factor", "second_factor_submit", "logout", "logout_everywhere", "static", "privacy", "terms",
     "cookies", "healthz", "readyz", "metrics", "language"}
)
# Routes a session between password and second factor may reach.
OPEN_DURING_SECOND_FACTOR = WEB_APP | frozenset(
    {"second_factor", "second_factor_submit", "two_factor_setup", "two_factor_setup_submit", "logout",
     "static", "privacy", "terms", "cookies", "healthz", "readyz", "metrics", "language"}
)
SESSION_TOKEN_MAX = 64
SERVER_NAME = "smartpractice"


def _route_name(request: web.Request) -> str | None:
    route = request.match_info.route
    return route.name if route else None


def hide_server_version() -> None:
    """aiohttp names itself and Python's version in `Server` on every response, its
    parser's 400s included, and has no setting for it: the name it uses is replaced."""
    web_response.SERVER_SOFTWARE = SERVER_NAME


@web.middleware
async def request_ids(request: web.Request, handler):
    """Every request gets an id: in each of its log records and in `X-Request-Id`, so
    that a user's report ("it failed at 10:02") can be matched with the log."""
    request_id = secrets.token_hex(8)
    request[request_id_key] = request_id
    REQUEST_ID.set(request_id)
    return await handler(request)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers["Server"] = SERVER_NAME
    if request_id_key in request:
        headers["X-Request-Id"] = request[request_id_key]
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "same-origin"
    headers["Permissions-Policy"] = PERMISSIONS_POLICY
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if request.app[settings_key].https:
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    if not request.path.startswith("/static/"):
        headers["Cache-Control"] = "no-store"


def _error_response(request: web.Request, status: int, reason: str) -> web.StreamResponse:
    if request.path.startswith("/api/"):
        return http_error_response(status)
    if translations_key not in request:
        request[translations_key] = request.app[catalogs_key].get(request.get(language_key, "de"))
    return render(request, "error.html", {"status": status, "reason": reason}, status=status)


def busy_page(request: web.Request, busy: Busy) -> web.StreamResponse:
    """503 with Retry-After and a page that says to try again in a few seconds."""
    log.warning("too busy for %s %s: %s", request.method, _route_name(request), busy.what)
    response = _error_response(request, 503, "busy")
    response.headers["Retry-After"] = str(busy.retry_after)
    return response


@web.middleware
async def sendings_complete(request: web.Request, handler):
    """A sending that reached the server (a form, an API call) runs to its end even when
    its client goes away meanwhile, after a double click or a closed tab. aiohttp cancels
    the handler then (handler_cancellation, which the sockets need), and a cancel between
    a transaction's statements left its connection holding SQLite's write lock until the
    garbage collector closed it: every other write waited out busy_timeout and was answered
    503. Reads may still be cut short. The handler learns that its client left from
    `client_gone_key`: a login then gives up its place in the queue for a password hash
    (accounts/passwords.py), which keeps a flood of logins from holding the hashes of those
    who stayed."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return await handler(request)
    gone = request[client_gone_key] = asyncio.Event()
    sending = asyncio.ensure_future(handler(request))
    sending.add_done_callback(_answer_read)
    try:
        return await asyncio.shield(sending)
    except asyncio.CancelledError:
        gone.set()
        raise


def _answer_read(sending: asyncio.Future) -> None:
    """An answer nobody waits for any more is read here; its errors were logged inside."""
    if not sending.cancelled():
        sending.exception()


@web.middleware
async def error_pages(request: web.Request, handler):
    """Every error gets a page that leaks nothing: no stack, no reason from inside."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error_response(request, exc.status, exc.reason.lower().replace(" ", "_"))
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Busy as busy:
        return busy_page(request, busy)
    except Exception as error:
        found = busy_database(error)
        if found is not None:
            return busy_page(request, found)
        log.exception("unhandled error in route %s", _route_name(request))
        return _error_response(request, 500, "internal_error")


@web.middleware
async def request_context(request: web.Request, handler):
    """Resolve the login session and the language. Static files need neither; the API
    authenticates by key, never by cookie; the health check must not depend on sessions."""
    if request.path.startswith(("/static/", "/api/", "/healthz", "/readyz", "/metrics")):
        return await handler(request)
    token = read_cookie(request, SESSION)
    resumed = None
    if token and len(token) <= SESSION_TOKEN_MAX:
        resumed = await request.app[services_key].sessions.resume(token)
    # A guest (TAN) is nobody's user: pages that need a user treat them as logged out.
    active = resumed if isinstance(resumed, ActiveSession) else None
    guest = resumed if isinstance(resumed, GuestSession) else None
    request[active_session_key] = active
    request[guest_session_key] = guest
    chosen = read_cookie(request, LANGUAGE)
    if active is not None and active.user.language:
        language = active.user.language
    elif chosen in LANGUAGES:
        language = chosen
    else:
        # A guest's own browser knows their language better than the clinician who chose
        # the invitation's; the invitation's language only fills in when the browser names none.
        fallback = guest.language if guest is not None else DEFAULT_LANGUAGE
        language = negotiate(request.headers.get("Accept-Language", ""), fallback)
    request[language_key] = language
    request[translations_key] = request.app[catalogs_key].get(language)
    return await handler(request)


@web.middleware
async def second_factor_gate(request: web.Request, handler):
    """After the password, staff reach nothing but the code form, or the app set-up if they have none."""
    active = request.get(active_session_key)
    if active is not None and active.session.needs_second_factor:
        if _route_name(request) not in OPEN_DURING_SECOND_FACTOR:
            enrolled = await request.app[services_key].second_factors.is_enrolled(active.user.id)
            if not enrolled and active.user.must_change_password:
                # An initial password is replaced first (password_change_gate), then the app set up.
                return await handler(request)
            raise web.HTTPSeeOther(request.app.router["second_factor" if enrolled else "two_factor_setup"].url_for())
    return await handler(request)


@web.middleware
async def password_change_gate(request: web.Request, handler):
    """Whoever logged in with an initial password reaches nothing until they choose their own."""
    active = request.get(active_session_key)
    if active is not None and active.user.must_change_password:
        if _route_name(request) not in OPEN_DURING_PASSWORD_CHANGE:
            raise web.HTTPSeeOther(request.app.router["password"].url_for())
    return await handler(request)
