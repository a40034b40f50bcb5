"""Staff pages for TAN invitations: invite, list, revoke, reissue, and where the TAN goes.

Inviting and sending again answer with a redirect to the invitation's "sent" page, and the
invite form carries a one-time token: reloading that page or sending the form twice makes
one invitation and one mail.
"""

from __future__ import annotations

from aiohttp import web

from smartpractice.errors import UserError
from smartpractice.keys import services_key
from smartpractice.onboarding.invitations import Invitee
from smartpractice.submissions import AlreadySubmitted, Once, new_token
from smartpractice.web.forms import field, read_form
from smartpractice.web.handover import hand_over, handed_over, shown
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.session import require_login, require_staff


async def _page(request: web.Request, membership, *, form: dict | None = None, error: str | None = None, status: int = 200):
    invitations = request.app[services_key].invitations
    context = {
        "practice": membership.practice,
        "is_admin": membership.is_admin,
        "is_clinician": membership.is_clinician,
        "invitations": await invitations.list(membership.practice.id),
        "tan_delivery": await invitations.tan_delivery(membership.practice.id),
        "zone": (await request.app[services_key].consultations.policy(membership.practice.id)).time_zone,
        "form": form or {"email": "", "display_name": "", "language": "de", "form_token": new_token()},
        "error": error,
    }
    return render(request, "invitations.html", context, status=status)


def made(request: web.Request, slug: str, done: AlreadySubmitted):
    """The page of what a form's first sending made."""
    if done.kind == "invitation":
        return request.app.router["invitation_sent"].url_for(slug=slug, id=str(done.object_id))
    return request.app.router["consultation"].url_for(slug=slug, id=str(done.object_id))


async def invitations_page(request: web.Request) -> web.StreamResponse:
    _, membership = await require_staff(request, request.match_info["slug"])
    return await _page(request, membership)


async def invite(request: web.Request) -> web.StreamResponse:
    """An invitation without a planned time: an instant consultation with the inviting
    clinician, whose waiting room the guest lands in. An admin who does not treat patients
    invites to the practice: every clinician's waiting room shows the guest."""
    active, membership = await require_staff(request, request.match_info["slug"])
    form = await read_form(request)
    typed = {
        "email": field(form, "email", 254),
        "display_name": field(form, "display_name", 200),
        "language": field(form, "language", 8) or "de",
    }
    token = field(form, "form_token", 64)
    slug = membership.practice.slug
    try:
        created = await request.app[services_key].consultations.invite_now(
            membership.practice, active.user.id if membership.is_clinician else None, Invitee.parse(**typed),
            actor=active.user.id,
            once=Once(active.user.id, token),
        )
    except AlreadySubmitted as done:
        return see_other(made(request, slug, done))
    except UserError as error:
        kept = new_token() if error.code == "form_outdated" else token
        return await _page(request, membership, form={**typed, "form_token": kept},
                           error=user_message(request, error), status=400)
    response = see_other(request.app.router["invitation_sent"].url_for(slug=slug, id=str(created.invitation.id)))
    hand_over(request, response, [created])
    return response


async def sent(request: web.Request) -> web.StreamResponse:
    """"Invitation sent": safe to reload, it sends nothing. A TAN the clinician passes on is
    shown once, on the first view after inviting."""
    _, membership = await require_staff(request, request.match_info["slug"])
    invitations = request.app[services_key].invitations
    view = await invitations.get(membership.practice.id, int(request.match_info["id"]))
    if view is None:
        raise web.HTTPNotFound()
    context = {
        "practice": membership.practice,
        "invitation": view,
        "tan": handed_over(request).get(view.id),
        "tan_in_mail": await invitations.tan_delivery(membership.practice.id) == "mail",
        "treats_patients": membership.is_clinician,
    }
    response = render(request, "invitation_sent.html", context)
    shown(request, response)
    return response


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
    active, membership = await require_staff(request, request.match_info["slug"])
    invitation_id = int(request.match_info["id"])
    token = field(await read_form(request), "form_token", 64)
    try:
        created = await request.app[services_key].invitations.reissue(
            membership.practice.id, invitation_id, actor=active.user.id,
            # The page's one token serves each row's button: the invitation is part of the owner.
            once=Once(f"{active.user.id}-reissue-{invitation_id}", token),
        )
    except AlreadySubmitted as done:
        return see_other(made(request, membership.practice.slug, done))
    except UserError as error:
        message = user_message(request, error)
        return await _page(request, membership, error=message, status=409)
    if created is None:
        raise web.HTTPNotFound()
    response = see_other(request.app.router["invitation_sent"].url_for(
        slug=membership.practice.slug, id=str(created.invitation.id)))
    hand_over(request, response, [created])
    return response


async def set_tan_delivery(request: web.Request) -> web.StreamResponse:
    _, membership = await require_staff(request, request.match_info["slug"])
    if not membership.is_admin:
        raise web.HTTPNotFound()
    form = await read_form(request)
    try:
        await request.app[services_key].invitations.set_tan_delivery(
            membership.practice.id, field(form, "tan_delivery", 16), actor=require_login(request).user.id
        )
    except UserError:
        raise web.HTTPBadRequest(reason="unknown TAN delivery") from None
    return see_other(request.app.router["invitations"].url_for(slug=membership.practice.slug))
