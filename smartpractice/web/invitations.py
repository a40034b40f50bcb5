"""Staff pages for TAN invitations: invite, list, revoke, reissue, and where the TAN goes."""

from __future__ import annotations

from aiohttp import web

from smartpractice.errors import UserError
from smartpractice.keys import services_key
from smartpractice.web.forms import field, read_form
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.session import require_login, require_staff


async def _page(request: web.Request, membership, *, form: dict | None = None, error: str | None = None, status: int = 200):
    invitations = request.app[services_key].invitations
    context = {
        "practice": membership.practice,
        "is_admin": membership.role == "admin",
        "invitations": await invitations.list(membership.practice.id),
        "tan_delivery": await invitations.tan_delivery(membership.practice.id),
        "form": form or {"email": "", "display_name": "", "language": "de"},
        "error": error,
    }
    return render(request, "invitations.html", context, status=status)


async def invitations_page(request: web.Request) -> web.StreamResponse:
    _, membership = await require_staff(request, request.match_info["slug"])
    return await _page(request, membership)


async def invite(request: web.Request) -> web.StreamResponse:
    active, membership = await require_staff(request, request.match_info["slug"])
    form = await read_form(request)
    typed = {
        "email": field(form, "email", 254),
        "display_name": field(form, "display_name", 200),
        "language": field(form, "language", 8) or "de",
    }
    try:
        created = await request.app[services_key].invitations.invite(
            membership.practice, invited_by=active.user.id, **typed
        )
    except UserError as error:
        message = user_message(request, error)
        return await _page(request, membership, form=typed, error=message, status=400)
    return render(request, "invitation_sent.html", {"practice": membership.practice, "created": created})


async def revoke(request: web.Request) -> web.StreamResponse:
    _, membership = await require_staff(request, request.match_info["slug"])
    active = require_login(request)
    revoked = await request.app[services_key].invitations.revoke(
        membership.practice.id, int(request.match_info["id"]), actor=active.user.id
    )
    if revoked is None:
        raise web.HTTPNotFound()
    return see_other(request.app.router["invitations"].url_for(slug=membership.practice.slug))


async def reissue(request: web.Request) -> web.StreamResponse:
    _, membership = await require_staff(request, request.match_info["slug"])
    try:
        created = await request.app[services_key].invitations.reissue(
            membership.practice.id, int(request.match_info["id"]), actor=require_login(request).user.id
        )
    except UserError as error:
        message = user_message(request, error)
        return await _page(request, membership, error=message, status=409)
    if created is None:
        raise web.HTTPNotFound()
    return render(request, "invitation_sent.html", {"practice": membership.practice, "created": created})


async def set_tan_delivery(request: web.Request) -> web.StreamResponse:
    _, membership = await require_staff(request, request.match_info["slug"])
    if membership.role != "admin":
        raise web.HTTPNotFound()
    form = await read_form(request)
    try:
        await request.app[services_key].invitations.set_tan_delivery(
            membership.practice.id, field(form, "tan_delivery", 16), actor=require_login(request).user.id
        )
    except UserError:
        raise web.HTTPBadRequest(reason="unknown TAN delivery") from None
    return see_other(request.app.router["invitations"].url_for(slug=membership.practice.slug))
