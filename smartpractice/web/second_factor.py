"""The second factor: the code at login, setting up an authenticator app, renewing it."""

from __future__ import annotations

from aiohttp import web

from smartpractice.errors import UserError
from smartpractice.keys import services_key
from smartpractice.web.client import client_address
from smartpractice.web.cookies import SESSION, set_cookie
from smartpractice.web.csrf import renew_csrf
from smartpractice.web.forms import field, read_form
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.session import require_login, safe_next


def _user_agent(request: web.Request) -> str:
    return request.headers.get("User-Agent", "")


async def code_form(request: web.Request) -> web.StreamResponse:
    active = require_login(request)
    if not active.session.needs_second_factor:
        raise web.HTTPSeeOther(request.app.router["home"].url_for())
    if not await request.app[services_key].second_factors.is_enrolled(active.user.id):
        raise web.HTTPSeeOther(request.app.router["two_factor_setup"].url_for())
    context = {"error": None, "next": safe_next(request.query.get("next")) or ""}
    return render(request, "second_factor.html", context)


async def submit_code(request: web.Request) -> web.StreamResponse:
    active = require_login(request)
    services = request.app[services_key]
    form = await read_form(request)
    target = safe_next(form.get("next"))
    if not active.session.needs_second_factor:
        return see_other(target or request.app.router["home"].url_for())
    try:
        await services.second_factors.verify(active.user, field(form, "code", 100), address=client_address(request))
    except UserError as error:
        context = {"error": user_message(request, error), "next": target or ""}
        return render(request, "second_factor.html", context, status=401)
    token = await services.login.complete(active.user, active.session.id, user_agent=_user_agent(request))
    response = see_other(target or request.app.router["home"].url_for())
    set_cookie(request, response, SESSION, token)
    renew_csrf(request, response)
    return response


async def overview(request: web.Request) -> web.StreamResponse:
    active = require_login(request)
    status = await request.app[services_key].second_factors.status(active.user.id)
    return render(request, "two_factor.html", {"status": status, "error": None})


async def renew(request: web.Request) -> web.StreamResponse:
    """Re-authenticate (password, and a code if enrolled), then begin a new enrolment."""
    active = require_login(request)
    services = request.app[services_key]
    form = await read_form(request)
    address = client_address(request)
    status = await services.second_factors.status(active.user.id)
    try:
        await services.login.verify_current_password(active.user, field(form, "current_password", 4096), address=address)
        if status.enrolled:
            await services.second_factors.verify(active.user, field(form, "code", 100), address=address)
    except UserError as error:
        return render(request, "two_factor.html", {"status": status, "error": user_message(request, error)}, status=400)
    await services.second_factors.begin(active.user)
    return see_other(request.app.router["two_factor_setup"].url_for())


async def _enrolment(request: web.Request, active):
    factors = request.app[services_key].second_factors
    pending = await factors.pending(active.user)
    if pending is None and active.session.needs_second_factor and not await factors.is_enrolled(active.user.id):
        # First login of staff: the password was just given, so no further re-authentication.
        pending = await factors.begin(active.user)
    return pending


async def setup_form(request: web.Request) -> web.StreamResponse:
    active = require_login(request)
    enrolment = await _enrolment(request, active)
    if enrolment is None:
        raise web.HTTPSeeOther(request.app.router["two_factor"].url_for())
    return render(request, "two_factor_setup.html", {"enrolment": enrolment, "error": None})


async def setup(request: web.Request) -> web.StreamResponse:
    active = require_login(request)
    services = request.app[services_key]
    enrolment = await _enrolment(request, active)
    if enrolment is None:
        return see_other(request.app.router["two_factor"].url_for())
    form = await read_form(request)
    try:
        codes = await services.second_factors.confirm(active.user, field(form, "code", 100), address=client_address(request))
    except UserError as error:
        context = {"enrolment": enrolment, "error": user_message(request, error)}
        return render(request, "two_factor_setup.html", context, status=400)
    # Rendered, not redirected: recovery codes are shown once and kept nowhere in plain text.
    response = render(request, "two_factor_codes.html", {"codes": codes})
    if active.session.needs_second_factor:
        token = await services.login.complete(active.user, active.session.id, user_agent=_user_agent(request))
        set_cookie(request, response, SESSION, token)
    return response
