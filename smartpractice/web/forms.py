"""Reading form posts so that malformed bodies become 400, never 500."""

from __future__ import annotations

from aiohttp import web
from multidict import MultiDictProxy


async def read_form(request: web.Request) -> MultiDictProxy:
    try:
        return await request.post()
    except web.HTTPException:
        raise
    except (ValueError, UnicodeDecodeError, AssertionError):
        raise web.HTTPBadRequest(reason="malformed form") from None


def field(form: MultiDictProxy, name: str, max_length: int = 1000) -> str:
    value = form.get(name, "")
    if not isinstance(value, str):
        raise web.HTTPBadRequest(reason=f"{name} must be text")
    if len(value) > max_length:
        raise web.HTTPBadRequest(reason=f"{name} too long")
    # No browser sends a NUL, and PostgreSQL's text cannot hold one: it would surface as a
    # database error wherever the value reaches a query.
    if "\x00" in value:
        raise web.HTTPBadRequest(reason=f"{name} holds a NUL character")
    return value
