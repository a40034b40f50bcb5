"""The admin's staff page: invite by email, change roles, deactivate and reactivate."""

from __future__ import annotations

from aiohttp import web

from smartpractice.accounts.tokens import LinkInvalid
from smartpractice.errors import UserError
from smartpractice.keys import language_key, services_key
from smartpractice.onboarding.staff_invitations import Newcomer
from smartpractice.practices.staff import StaffMemberNotFound
from smartpractice.web.cookies import SESSION, set_cookie
from smartpractice.web.csrf import renew_csrf
from smartpractice.web.forms import field, read_form
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.session import require_admin

NEWCOMER_FIELDS = ("display_name", "username")


def _id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 9:
        raise web.HTTPNotFound()
    return int(raw)


async def _page(request: web.Request, membership, *, error: str | None = None, form: dict | None = None,
                status: int = 200, sent: bool = False) -> web.Response:
    services = request.app[services_key]
    practice = membership.practice
    context = {
        "practice": practice,
        "members": await services.staff.list(practice.id),
        "invitations": await services.staff_invitations.list(practice.id),
        "usage": await services.plans.usage(practice.id),
        "form": form or {"email": "", "role": "clinician"},
        "error": error,
        "sent": sent,
    }
    return render(request, "staff.html", context, status=status)


async def page(request: web.Request) -> web.StreamResponse:
    _, membership = await require_admin(request, request.match_info["slug"])
    return await _page(request, membership, sent=request.query.get("sent") == "1")


async def invite(request: web.Request) -> web.StreamResponse:
    active, membership = await require_admin(request, request.match_info["slug"])
    form = await read_form(request)
    typed = {"email": field(form, "email", 254), "role": field(form, "role", 16)}
    try:
        await request.app[services_key].staff_invitations.invite(membership.practice, inviter=active.user, **typed)
    except UserError as error:
        return await _page(request, membership, error=user_message(request, error), form=typed, status=400)
    return see_other(request.app.router["staff"].url_for(slug=membership.practice.slug).with_query(sent="1"))


async def revoke_invitation(request: web.Request) -> web.StreamResponse:
    active, membership = await require_admin(request, request.match_info["slug"])
    revoked = await request.app[services_key].staff_invitations.revoke(
        membership.practice.id, _id(request, "id"), actor=active.user.id
    )
    if not revoked:
        raise web.HTTPNotFound()
    return see_other(request.app.router["staff"].url_for(slug=membership.practice.slug))


async def _change(request: web.Request, change) -> web.StreamResponse:
    active, membership = await require_admin(request, request.match_info["slug"])
    form = await read_form(request)
    try:
        await change(request.app[services_key].staff, membership.practice.id, _id(request, "user_id"), form, active.user.id)
    except StaffMemberNotFound:
        raise web.HTTPNotFound() from None
    except UserError as error:
        return await _page(request, membership, error=user_message(request, error), status=400)
    return see_other(request.app.router["staff"].url_for(slug=membership.practice.slug))


async def change_role(request: web.Request) -> web.StreamResponse:
    return await _change(
        request, lambda staff, practice_id, user_id, form, actor:
        staff.change_role(practice_id, user_id, field(form, "role", 16), actor=actor),
    )


async def deactivate(request: web.Request) -> web.StreamResponse:
    return await _change(
        request, lambda staff, practice_id, user_id, form, actor: staff.deactivate(practice_id, user_id, actor=actor)
    )


async def reactivate(request: web.Request) -> web.StreamResponse:
    return await _change(
        request, lambda staff, practice_id, user_id, form, actor: staff.reactivate(practice_id, user_id, actor=actor)
    )


async def _open(request: web.Request):
    try:
        return await request.app[services_key].staff_invitations.open(request.match_info["token"]), None
    except LinkInvalid as error:
        return None, render(request, "link_invalid.html", {"error": user_message(request, error)}, status=error.status)


async def accept_form(request: web.Request) -> web.StreamResponse:
    invitation, invalid = await _open(request)
    if invalid is not None:
        return invalid
    context = {"invitation": invitation, "form": dict.fromkeys(NEWCOMER_FIELDS, ""), "error": None,
               "token": request.match_info["token"]}
    return render(request, "staff_join.html", context)


async def accept(request: web.Request) -> web.StreamResponse:
    invitation, invalid = await _open(request)
    if invalid is not None:
        return invalid
    form = await read_form(request)
    typed = {name: field(form, name, 254) for name in NEWCOMER_FIELDS}
    newcomer = Newcomer(
        password=field(form, "password", 4096), password_repeat=field(form, "password_repeat", 4096),
        language=request[language_key], **typed,
    )
    try:
        token = await request.app[services_key].staff_invitations.accept(
            request.match_info["token"], newcomer, user_agent=request.headers.get("User-Agent", "")
        )
    except LinkInvalid as error:
        return render(request, "link_invalid.html", {"error": user_message(request, error)}, status=error.status)
    except UserError as error:
        context = {"invitation": invitation, "form": typed, "error": user_message(request, error),
                   "token": request.match_info["token"]}
        return render(request, "staff_join.html", context, status=400)
    # Logged in with the password just chosen; the gate leads on to setting up the app.
    response = see_other(request.app.router["two_factor_setup"].url_for())
    set_cookie(request, response, SESSION, token)
    renew_csrf(request, response)
    return response
