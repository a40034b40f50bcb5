"""The user's own account: password, sessions, language."""

from __future__ import annotations

from aiohttp import web

from smartpractice.accounts.sessions import ActiveSession
from smartpractice.errors import UserError
from smartpractice.i18n import LANGUAGES, N_
from smartpractice.keys import active_session_key, services_key, settings_key
from smartpractice.submissions import new_token
from smartpractice.web.client import client_address
from smartpractice.web.cookies import LANGUAGE, SESSION, set_cookie
from smartpractice.web.forms import field, read_form
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.session import reader_zone, require_login


async def account(request: web.Request) -> web.StreamResponse:
    return await account_page(request, require_login(request))


async def account_page(
    request: web.Request, active: ActiveSession, *, email_error: str | None = None, new_email: str = "",
    delete_error: str | None = None, status: int = 200,
) -> web.Response:
    """The account page; the email form comes back with its error and what was typed."""
    services = request.app[services_key]
    context = {
        "sessions": await services.sessions.list(active.user.id),
        "current_session_id": active.session.id,
        "second_factor": await services.second_factors.is_enrolled(active.user.id),
        "email_error": email_error,
        "email_form_token": new_token(),
        "new_email": new_email,
        "delete_error": delete_error,
        "zone": await reader_zone(request, active),
    }
    return render(request, "account.html", context, status=status)


async def end_session(request: web.Request) -> web.StreamResponse:
    active = require_login(request)
    session_id = int(request.match_info["session_id"])
    if not await request.app[services_key].sessions.end_own(active.user.id, session_id):
        raise web.HTTPNotFound()
    return see_other(request.app.router["account"].url_for())


async def password_form(request: web.Request) -> web.StreamResponse:
    active = require_login(request)
    context = {"error": None, "forced": active.user.must_change_password}
    return render(request, "password.html", context)


async def change_password(request: web.Request) -> web.StreamResponse:
    active = require_login(request)
    services = request.app[services_key]
    form = await read_form(request)
    current = field(form, "current_password", 4096)
    new = field(form, "new_password", 4096)
    repeated = field(form, "new_password_repeat", 4096)
    try:
        await services.login.verify_current_password(active.user, current, address=client_address(request))
        if new != repeated:
            raise UserError("password_mismatch", N_("The two new passwords are not the same."))
        await services.users.change_password(active.user, new, keep_session=active.session.id)
    except UserError as error:
        message = user_message(request, error)
        context = {"error": message, "forced": active.user.must_change_password}
        return render(request, "password.html", context, status=400)
    token = await services.sessions.renew(active, request.headers.get("User-Agent", ""))
    response = see_other(request.app.router["home"].url_for().with_query(changed="password"))
    set_cookie(request, response, SESSION, token)
    return response


async def set_language(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    language = field(form, "language", 8)
    if language not in LANGUAGES:
        raise web.HTTPBadRequest(reason="unknown language")
    active = request.get(active_session_key)
    if active is not None:
        await request.app[services_key].users.set_language(active.user.id, language)
    back = request.headers.get("Referer", "")
    own = request.app[settings_key].origin + "/"
    target = back if back.startswith(own) else str(request.app.router["home"].url_for())
    response = see_other(target)
    set_cookie(request, response, LANGUAGE, language, max_age=365 * 24 * 3600)
    return response
