"""The admin's page for API keys: create (the key is shown once), list, revoke."""

from __future__ import annotations

from aiohttp import web

from smartpractice.errors import UserError
from smartpractice.keys import services_key
from smartpractice.web.forms import field, read_form
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.session import require_admin


async def _page(request, membership, *, created=None, error: str | None = None, name: str = "", status: int = 200):
    keys = await request.app[services_key].api_keys.list(membership.practice.id)
    context = {"practice": membership.practice, "keys": keys, "created": created, "error": error, "name": name}
    return render(request, "api_keys.html", context, status=status)


async def page(request: web.Request) -> web.StreamResponse:
    _, membership = await require_admin(request, request.match_info["slug"])
    return await _page(request, membership)


async def create(request: web.Request) -> web.StreamResponse:
    active, membership = await require_admin(request, request.match_info["slug"])
    name = field(await read_form(request), "name", 200)
    try:
        created = await request.app[services_key].api_keys.create(membership.practice, name, actor=active.user.id)
    except UserError as error:
        message = user_message(request, error)
        return await _page(request, membership, error=message, name=name, status=400)
    # Rendered, not redirected: the key exists in plain text only in this one answer.
    return await _page(request, membership, created=created)


async def revoke(request: web.Request) -> web.StreamResponse:
    active, membership = await require_admin(request, request.match_info["slug"])
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 9:
        raise web.HTTPNotFound()
    try:
        await request.app[services_key].api_keys.revoke(membership.practice.id, int(raw), actor=active.user.id)
    except UserError:
        raise web.HTTPNotFound() from None
    return see_other(request.app.router["api_keys"].url_for(slug=membership.practice.slug))
