"""Confirming an email address from the mailed link, and asking for a fresh mail."""

from __future__ import annotations

from aiohttp import web

from smartpractice.accounts.tokens import LinkInvalid
from smartpractice.errors import UserError
from smartpractice.keys import services_key
from smartpractice.submissions import AlreadySubmitted, Once, new_token
from smartpractice.web.client import client_address
from smartpractice.web.forms import field, read_form
from smartpractice.web.responses import render, user_message


def _invalid(request: web.Request, error: LinkInvalid) -> web.Response:
    context = {"error": user_message(request, error), "code": error.code}
    return render(request, "confirm_invalid.html", context, status=error.status)


async def confirm_form(request: web.Request) -> web.StreamResponse:
    """Only a page with a button: mail scanners that fetch the link must not confirm."""
    try:
        user = await request.app[services_key].confirmations.check(request.match_info["token"])
    except LinkInvalid as error:
        return _invalid(request, error)
    return render(request, "confirm.html", {"username": user.username})


async def confirm(request: web.Request) -> web.StreamResponse:
    try:
        user = await request.app[services_key].confirmations.confirm(request.match_info["token"])
    except LinkInvalid as error:
        return _invalid(request, error)
    context = {"username": user.username, "initial_password": user.must_change_password}
    return render(request, "confirm_done.html", context)


async def resend_form(request: web.Request) -> web.StreamResponse:
    return render(request, "confirm_resend.html", {"sent": False, "email": "", "error": None, "form_token": new_token()})


async def resend(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    email = field(form, "email", 254)
    # Anonymous: the token alone, random and unguessable, tells one sending from another.
    once = Once("confirmation-resend", field(form, "form_token", 64))
    try:
        await request.app[services_key].confirmations.resend(email, address=client_address(request), once=once)
    except AlreadySubmitted:
        pass  # a reload or a second click: the first sending did what there was to do
    except UserError as error:
        context = {"sent": False, "email": email, "error": user_message(request, error), "form_token": new_token()}
        return render(request, "confirm_resend.html", context, status=400)
    # The same page whether or not the address has an account (ASVS 6.3.8).
    return render(request, "confirm_resend.html", {"sent": True, "email": "", "error": None, "form_token": new_token()})
