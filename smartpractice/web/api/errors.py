"""API errors: every failure becomes `{"code", "message"}` with a fitting 4xx status.

The middleware here wraps every `/api/` request: it authenticates the API key, then
turns whatever goes wrong into JSON, so that practice software never has to parse a
page and never sees a 500 for input it sent.
"""

from __future__ import annotations

import logging

from aiohttp import web

from smartpractice.errors import Busy, UserError, busy_database
from smartpractice.keys import services_key
from smartpractice.logs import practice_id_key
from smartpractice.web.api.request import api_practice_key

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
PUBLIC_ROUTES = frozenset({"api_openapi"})
# UserError codes that mean "someone already has this", not "you typed it wrong".
CONFLICTS = frozenset({
    "username_taken", "email_taken", "account_conflict",
    "consultation_running", "consultation_ended", "consultation_cancelled",
    "too_many_participants", "participant_present",
})
HTTP_CODES = {
    400: ("invalid_input", "The request is malformed."),
    401: ("unauthorized", "An API key is needed."),
    403: ("forbidden", "This is not allowed."),
    404: ("not_found", "There is nothing here."),
    405: ("method_not_allowed", "This method is not allowed here."),
    413: ("body_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "Send the request body as JSON with Content-Type: application/json."),
}
INTERNAL = ("internal_error", "Something went wrong on the server. The problem has been logged.")
BUSY = ("busy", "The server is busy. Please try again after the seconds given in Retry-After.")
MISSING_KEY = "Send an API key in the header `Authorization: Bearer <key>`."
INVALID_KEY = "This API key is not valid, or it has been revoked."


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_response(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    body: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    response = web.json_response(body, status=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def http_error_response(status: int) -> web.Response:
    """The JSON answer for an HTTP error status, e.g. from routing or body limits."""
    code, message = HTTP_CODES.get(status, INTERNAL if status >= 500 else ("http_error", "The request failed."))
    return error_response(status, code, message)


def user_error(error: UserError) -> ApiError:
    # API messages are English: the English catalog is the msgid itself.
    return ApiError(409 if error.code in CONFLICTS else 400, error.code, error.text())


async def _authenticate(request: web.Request) -> None:
    scheme, _, key = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "unauthorized", MISSING_KEY)
    practice = await request.app[services_key].api_keys.authenticate(key.strip())
    if practice is None:
        raise ApiError(401, "unauthorized", INVALID_KEY)
    request[api_practice_key] = practice
    request[practice_id_key] = practice.id


@web.middleware
async def api_errors(request: web.Request, handler):
    if not request.path.startswith(API_PREFIX):
        return await handler(request)
    try:
        match = request.match_info
        # Unrouted requests go on to their 404 or 405 without a key: the map is public.
        if match.http_exception is None and match.route.name not in PUBLIC_ROUTES:
            await _authenticate(request)
        return await handler(request)
    except (ApiError, UserError) as caught:
        error = caught if isinstance(caught, ApiError) else user_error(caught)
        return error_response(error.status, error.code, error.message, error.field)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = http_error_response(exc.status)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception as error:
        route = request.match_info.route
        busy = error if isinstance(error, Busy) else busy_database(error)
        if busy is not None:
            log.warning("too busy for API route %s: %s", route.name if route else None, busy.what)
            response = error_response(503, *BUSY)
            response.headers["Retry-After"] = str(busy.retry_after)
            return response
        log.exception("unhandled error in API route %s", route.name if route else None)
        return error_response(500, *INTERNAL)
