"""Forgotten password: ask for a link by mail, then choose a new password."""

from __future__ import annotations

from aiohttp import web

from smartpractice.accounts.tokens import LinkInvalid
from smartpractice.errors import UserError
from smartpractice.keys import services_key
from smartpractice.submissions import AlreadySubmitted, Once, new_token
from smartpractice.web.client import client_address
from smartpractice.web.forms import field, read_form
from smartpractice.web.responses import render, see_other, user_message


async def request_form(request: web.Request) -> web.StreamResponse:
    return render(request, "password_reset_request.html",
                  {"sent": False, "identifier": "", "error": None, "form_token": new_token()})


async def request_link(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    identifier = field(form, "identifier", 254)
    # Anonymous: the token alone, random and unguessable, tells one sending from another.
    once = Once("password-reset", field(form, "form_token", 64))
    try:
        await request.app[services_key].password_resets.request(identifier, address=client_address(request), once=once)
    except AlreadySubmitted:
        pass  # a reload or a second click: the first sending did what there was to do
    except UserError as error:  # only an outdated form: nothing about the account
        context = {"sent": False, "identifier": identifier, "error": user_message(request, error), "form_token": new_token()}
        return render(request, "password_reset_request.html", context, status=400)
    # The same page whether or not the account exists (ASVS 6.3.8).
    return render(request, "password_reset_request.html",
                  {"sent": True, "identifier": "", "error": None, "form_token": new_token()})


async def new_password_form(request: web.Request) -> web.StreamResponse:
    try:
        await request.app[services_key].password_resets.check_link(request.match_info["token"])
    except LinkInvalid as error:
        return render(request, "link_invalid.html", {"error": user_message(request, error)}, status=error.status)
    return render(request, "password_reset.html", {"error": None})


async def set_new_password(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    try:
        await request.app[services_key].password_resets.reset(
            request.match_info["token"], field(form, "new_password", 4096), field(form, "new_password_repeat", 4096)
        )
    except LinkInvalid as error:
        return render(request, "link_invalid.html", {"error": user_message(request, error)}, status=error.status)
    except UserError as error:
        return render(request, "password_reset.html", {"error": user_message(request, error)}, status=400)
    return see_other(request.app.router["login"].url_for().with_query(reset="done"))
