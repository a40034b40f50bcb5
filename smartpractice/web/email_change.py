"""Changing one's own email address: the request on the account page, the mailed link."""

from __future__ import annotations

from aiohttp import web

from smartpractice.accounts.tokens import LinkInvalid
from smartpractice.errors import UserError
from smartpractice.keys import active_session_key, services_key
from smartpractice.submissions import AlreadySubmitted, Once
from smartpractice.web.account import account_page
from smartpractice.web.client import client_address
from smartpractice.web.forms import field, read_form
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.session import require_login


def _refused(request: web.Request, error: UserError) -> web.Response:
    context = {"error": user_message(request, error), "code": error.code}
    return render(request, "email_change_invalid.html", context, status=error.status)


async def request_change(request: web.Request) -> web.StreamResponse:
    active = require_login(request)
    form = await read_form(request)
    new_email = field(form, "new_email", 254)
    once = Once(active.user.id, field(form, "form_token", 64))
    try:
        await request.app[services_key].email_changes.request(
            active.user, new_email, field(form, "current_password", 4096), field(form, "code", 100),
            address=client_address(request), once=once,
        )
    except AlreadySubmitted:
        pass  # a reload or a second click: the first sending asked for the change
    except UserError as error:
        return await account_page(request, active, email_error=user_message(request, error), new_email=new_email, status=400)
    # The same page whether or not the address belongs to another account (ASVS 6.3.8).
    return see_other(request.app.router["email_change_sent"].url_for())


async def sent(request: web.Request) -> web.StreamResponse:
    require_login(request)
    return render(request, "email_change_sent.html", {})


async def confirm_form(request: web.Request) -> web.StreamResponse:
    """Only a page with a button: mail scanners that fetch the link must not confirm."""
    try:
        pending = await request.app[services_key].email_changes.check(request.match_info["token"])
    except LinkInvalid as error:
        return _refused(request, error)
    context = {"username": pending.user.username, "new_email": pending.new_email}
    return render(request, "email_change_confirm.html", context)


async def confirm(request: web.Request) -> web.StreamResponse:
    active = request.get(active_session_key)
    try:
        user = await request.app[services_key].email_changes.confirm(
            request.match_info["token"],
            current_user_id=active.user.id if active else None,
            current_session_id=active.session.id if active else None,
        )
    except UserError as error:
        return _refused(request, error)
    return render(request, "email_change_done.html", {"email": user.email, "logged_in": active is not None})
