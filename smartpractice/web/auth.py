"""Login and logout."""

from __future__ import annotations

from aiohttp import web

from smartpractice.accounts.login import LoginFailed
from smartpractice.errors import Busy
from smartpractice.i18n import N_
from smartpractice.keys import (
    active_session_key,
    client_gone_key,
    guest_session_key,
    services_key,
    translations_key,
)
from smartpractice.web.client import client_address
from smartpractice.web.cookies import (
    DEVICE,
    DEVICE_DAYS,
    GUEST,
    SESSION,
    clear_cookie,
    read_cookie,
    set_cookie,
)
from smartpractice.web.csrf import renew_csrf
from smartpractice.web.forms import field, read_form
from smartpractice.web.metrics import count_login
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.session import require_login, safe_next

BUSY_MESSAGE = N_("Very many people are logging in right now. Please send the form again in a few seconds.")


def login_page(request: web.Request, *, status: int = 200, **shown) -> web.Response:
    """The login page: password login, and "Log in with TAN" (invitation code and TAN)."""
    context = {
        "identifier": "",
        "error": None,
        "error_code": None,
        "next": "",
        "reset_done": False,
        "joined": False,
        "code": "",
        "tan": "",
        "tan_error": None,
        "tan_contact": "",
        **shown,
    }
    return render(request, "login.html", context, status=status)


async def login_form(request: web.Request) -> web.StreamResponse:
    if request.get(active_session_key) is not None:
        raise web.HTTPSeeOther(request.app.router["home"].url_for())
    return login_page(request, next=safe_next(request.query.get("next")) or "",
                      reset_done=request.query.get("reset") == "done", joined=request.query.get("joined") == "1")


async def login(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    identifier = field(form, "identifier", 254)
    password = field(form, "password", 4096)
    target = safe_next(form.get("next"))
    try:
        logged_in = await request.app[services_key].login.log_in(
            identifier,
            password,
            address=client_address(request),
            user_agent=request.headers.get("User-Agent", ""),
            device=read_cookie(request, DEVICE),
            client_gone=request.get(client_gone_key),
        )
    except LoginFailed as error:
        count_login(request, "password", ok=False)
        return login_page(request, status=error.status, identifier=identifier, error=user_message(request, error),
                          error_code=error.code, next=target or "")
    except Busy as busy:
        # Many logging in at once: the form again, filled in, asking to send it in a moment.
        message = request[translations_key].gettext(BUSY_MESSAGE)
        response = login_page(request, status=503, identifier=identifier, error=message, error_code="busy",
                              next=target or "")
        response.headers["Retry-After"] = str(busy.retry_after)
        return response
    count_login(request, "password", ok=True)
    if logged_in.second_factor == "verify":
        code_page = request.app.router["second_factor"].url_for()
        response = see_other(code_page.with_query(next=target) if target else code_page)
    else:
        # Staff who still have to set up an app are led there by the second-factor gate.
        response = see_other(target or request.app.router["home"].url_for())
    set_cookie(request, response, SESSION, logged_in.token)
    set_cookie(request, response, DEVICE, logged_in.device, max_age=DEVICE_DAYS * 24 * 3600)
    renew_csrf(request, response)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    resumed = request.get(active_session_key) or request.get(guest_session_key)
    if resumed is not None:
        await request.app[services_key].sessions.end(resumed.session.id)
    response = see_other(request.app.router["login"].url_for())
    clear_cookie(request, response, SESSION)
    if read_cookie(request, GUEST):
        # A guest who logs out is not led back to their invitation's TAN page.
        clear_cookie(request, response, GUEST)
    return response


async def logout_everywhere(request: web.Request) -> web.StreamResponse:
    active = require_login(request)
    await request.app[services_key].sessions.end_all(active.user.id)
    response = see_other(request.app.router["login"].url_for())
    clear_cookie(request, response, SESSION)
    return response
