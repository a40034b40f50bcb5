"""Invited guests: the invitation link's TAN form, and the page a guest lands on."""

from __future__ import annotations

from aiohttp import web

from smartpractice.accounts.tokens import LinkInvalid
from smartpractice.errors import UserError
from smartpractice.keys import guest_session_key, services_key
from smartpractice.web.client import client_address
from smartpractice.web.cookies import SESSION, set_cookie
from smartpractice.web.csrf import renew_csrf
from smartpractice.web.forms import field, read_form
from smartpractice.web.responses import render, see_other, user_message


async def tan_form(request: web.Request) -> web.StreamResponse:
    try:
        welcome = await request.app[services_key].invitations.open_link(request.match_info["token"])
    except LinkInvalid as error:
        return render(request, "invitation_invalid.html", {"error": user_message(request, error)}, status=error.status)
    return render(request, "invitation_login.html", {"welcome": welcome, "error": None})


async def tan_login(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    invitations = request.app[services_key].invitations
    link = request.match_info["token"]
    try:
        token = await invitations.log_in_with_tan(
            link, field(form, "tan", 40), address=client_address(request), user_agent=request.headers.get("User-Agent", "")
        )
    except LinkInvalid as error:
        return render(request, "invitation_invalid.html", {"error": user_message(request, error)}, status=error.status)
    except UserError as error:
        try:
            welcome = await invitations.open_link(link)
        except LinkInvalid:  # this try locked it
            return render(request, "invitation_invalid.html", {"error": user_message(request, error)}, status=410)
        return render(request, "invitation_login.html", {"welcome": welcome, "error": user_message(request, error)}, status=401)
    response = see_other(request.app.router["guest"].url_for())
    set_cookie(request, response, SESSION, token)
    renew_csrf(request, response)
    return response


async def guest_page(request: web.Request) -> web.StreamResponse:
    guest = request.get(guest_session_key)
    if guest is None:
        return see_other(request.app.router["login"].url_for())
    welcome = await request.app[services_key].invitations.welcome(guest.invitation_id)
    if welcome is None:
        return see_other(request.app.router["login"].url_for())
    if welcome.invitation.consultation_id is not None:
        return see_other(request.app.router["waiting_room"].url_for(id=str(welcome.invitation.consultation_id)))
    return render(request, "guest.html", {"welcome": welcome})
