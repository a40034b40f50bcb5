"""What API handlers ask of the request: the key's practice and the ids in the path."""

from __future__ import annotations

from aiohttp import web

from smartpractice.practices.practices import Practice

api_practice_key = web.RequestKey("api_practice", Practice)
# Ids are 32-bit in PostgreSQL; a larger number names nothing, so it is a 404, not a 500.
MAX_ID = 2**31 - 1
MAX_ID_DIGITS = len(str(MAX_ID))


def api_practice(request: web.Request) -> Practice:
    """The practice whose key authenticated this request (set by the API middleware)."""
    return request[api_practice_key]


def path_id(request: web.Request) -> int:
    """The `{id}` of the path (the route matches only ASCII digits)."""
    raw = request.match_info["id"]
    if not raw.isdigit() or not raw.isascii() or len(raw) > MAX_ID_DIGITS or not 1 <= int(raw) <= MAX_ID:
        raise web.HTTPNotFound()
    return int(raw)
