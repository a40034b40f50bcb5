"""The admin's staff page: invite by email, change roles, deactivate and reactivate, and a
member's data: its copy and its deletion (GDPR art. 15, 17, 20)."""

from __future__ import annotations

from aiohttp import web

from smartpractice.accounts.tokens import LinkInvalid
from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.keys import active_session_key, language_key, services_key
from smartpractice.onboarding.staff_invitations import Newcomer
from smartpractice.practices.staff import StaffMemberNotFound, role_choice
from smartpractice.submissions import AlreadySubmitted, Once, new_token
from smartpractice.web.cookies import SESSION, clear_cookie, set_cookie
from smartpractice.web.csrf import renew_csrf
from smartpractice.web.forms import field, read_form
from smartpractice.web.personal_data import json_download
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.session import require_admin

NEWCOMER_FIELDS = ("display_name", "username")


def _id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 9:
        raise web.HTTPNotFound()
    return int(raw)


async def _page(request: web.Request, membership, *, error: str | None = None, form: dict | None = None,
                status: int = 200, sent: bool = False, deleted: bool = False) -> web.Response:
    services = request.app[services_key]
    practice = membership.practice
    context = {
        "practice": practice,
        "members": await services.staff.list(practice.id),
        "role_choice": role_choice,
        "invitations": await services.staff_invitations.list(practice.id),
        "usage": await services.plans.usage(practice.id),
        "form": form or {"email": "", "role": "clinician", "form_token": new_token()},
        "error": error,
        "sent": sent,
        "deleted": deleted,
        "zone": (await services.consultations.policy(practice.id)).time_zone,
    }
    return render(request, "staff.html", context, status=status)


async def page(request: web.Request) -> web.StreamResponse:
    _, membership = await require_admin(request, request.match_info["slug"])
    return await _page(request, membership, sent=request.query.get("sent") == "1",
                       deleted=request.query.get("deleted") == "1")


async def invite(request: web.Request) -> web.StreamResponse:
    active, membership = await require_admin(request, request.match_info["slug"])
    form = await read_form(request)
    typed = {"email": field(form, "email", 254), "role": field(form, "role", 16)}
    token = field(form, "form_token", 64)
    sent = see_other(request.app.router["staff"].url_for(slug=membership.practice.slug).with_query(sent="1"))
    try:
        await request.app[services_key].staff_invitations.invite(
            membership.practice, inviter=active.user, once=Once(active.user.id, token), **typed)
    except AlreadySubmitted:
        return sent  # a reload or a second click: the first sending's mail is on its way
    except UserError as error:
        kept = new_token() if error.code == "form_outdated" else token
        return await _page(request, membership, error=user_message(request, error),
                           form={**typed, "form_token": kept}, status=400)
    return sent


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


async def member_data(request: web.Request) -> web.StreamResponse:
    """What the practice holds about a staff member, as JSON (docs/privacy-operations.md)."""
    active, membership = await require_admin(request, request.match_info["slug"])
    services = request.app[services_key]
    try:
        user = await services.staff.account(membership.practice.id, _id(request, "user_id"))
    except StaffMemberNotFound:
        raise web.HTTPNotFound() from None
    data = await services.personal_data.export(user, practice=membership.practice, actor=active.user.id)
    return json_download(data, f"staff-{user.id}")


async def delete_member(request: web.Request) -> web.StreamResponse:
    active, membership = await require_admin(request, request.match_info["slug"])
    user_id = _id(request, "user_id")
    form = await read_form(request)
    try:
        if field(form, "confirm", 8) != "yes":
            raise UserError("deletion_not_confirmed",
                            N_("Please confirm that the staff member's data is to be deleted."))
        whole = await request.app[services_key].staff.delete(membership.practice.id, user_id, actor=active.user.id)
    except StaffMemberNotFound:
        raise web.HTTPNotFound() from None
    except UserError as error:
        return await _page(request, membership, error=user_message(request, error), status=400)
    if user_id != active.user.id:
        return see_other(request.app.router["staff"].url_for(slug=membership.practice.slug).with_query(deleted="1"))
    # An admin who deleted themselves: their sessions went with it.
    request[active_session_key] = None
    response = (render(request, "account_deleted.html") if whole
                else see_other(request.app.router["login"].url_for()))
    clear_cookie(request, response, SESSION)
    return response


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
               "token": request.match_info["token"], "form_token": new_token()}
    return render(request, "staff_join.html", context)


async def accept(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    typed = {name: field(form, name, 254) for name in NEWCOMER_FIELDS}
    newcomer = Newcomer(
        password=field(form, "password", 4096), password_repeat=field(form, "password_repeat", 4096),
        language=request[language_key], **typed,
    )
    # Anonymous: the token alone, random and unguessable, tells one sending from another.
    once = Once("staff-join", field(form, "form_token", 64))
    try:
        token = await request.app[services_key].staff_invitations.accept(
            request.match_info["token"], newcomer, user_agent=request.headers.get("User-Agent", ""), once=once
        )
    except AlreadySubmitted:
        # A double click: the first sending made the account, its answer (and session) never
        # reached the browser. The password was just chosen, so logging in is one step.
        return see_other(request.app.router["login"].url_for().with_query(joined="1"))
    except LinkInvalid as error:
        return render(request, "link_invalid.html", {"error": user_message(request, error)}, status=error.status)
    except UserError as error:
        invitation, invalid = await _open(request)
        if invalid is not None:
            return invalid
        context = {"invitation": invitation, "form": typed, "error": user_message(request, error),
                   "token": request.match_info["token"], "form_token": new_token()}
        return render(request, "staff_join.html", context, status=400)
    # Logged in with the password just chosen; the gate leads on to setting up the app.
    response = see_other(request.app.router["two_factor_setup"].url_for())
    set_cookie(request, response, SESSION, token)
    renew_csrf(request, response)
    return response
