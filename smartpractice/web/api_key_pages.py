"""The admin's page for API keys: create (the key is shown once), list, revoke."""

from __future__ import annotations

from aiohttp import web

from smartpractice.errors import UserError
from smartpractice.keys import services_key
from smartpractice.submissions import AlreadySubmitted, Once, new_token
from smartpractice.web.forms import field, read_form
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.session import require_admin


async def _page(request, membership, *, created=None, error: str | None = None, name: str = "", status: int = 200,
                form_token: str | None = None):
    keys = await request.app[services_key].api_keys.list(membership.practice.id)
    zone = (await request.app[services_key].consultations.policy(membership.practice.id)).time_zone
    context = {"practice": membership.practice, "keys": keys, "created": created, "error": error, "name": name,
               "zone": zone, "form_token": form_token or new_token(),
               "already": request.query.get("already") == "1"}
    return render(request, "api_keys.html", context, status=status)


async def page(request: web.Request) -> web.StreamResponse:
    _, membership = await require_admin(request, request.match_info["slug"])
    return await _page(request, membership)


async def create(request: web.Request) -> web.StreamResponse:
    active, membership = await require_admin(request, request.match_info["slug"])
    form = await read_form(request)
    name, token = field(form, "name", 200), field(form, "form_token", 64)
    try:
        created = await request.app[services_key].api_keys.create(
            membership.practice, name, actor=active.user.id, once=Once(active.user.id, token))
    except AlreadySubmitted:
        # A reload or a second click: the key was made and shown in the first answer only.
        url = request.app.router["api_keys"].url_for(slug=membership.practice.slug).with_query(already="1")
        return see_other(url)
    except UserError as error:
        message = user_message(request, error)
        kept = None if error.code == "form_outdated" else token
        return await _page(request, membership, error=message, name=name, status=400, form_token=kept)
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
