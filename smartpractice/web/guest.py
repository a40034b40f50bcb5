"""TAN guests: their invitation's page (by the mailed link, or by a cookie after their
session lapsed), the TAN entry, "Send a new code", "Log in with TAN" on the login page,
and the page of a guest whose invitation has no consultation."""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from smartpractice.accounts.tokens import LinkInvalid
from smartpractice.errors import UserError
from smartpractice.keys import guest_session_key, language_key, secret_key, services_key
from smartpractice.onboarding.guest_access import GuestEntry, InvitationRef
from smartpractice.submissions import AlreadySubmitted, new_token
from smartpractice.web.auth import login_page
from smartpractice.web.client import client_address
from smartpractice.web.cookies import GUEST, SESSION, read_cookie, set_cookie
from smartpractice.web.csrf import renew_csrf
from smartpractice.web.forms import field, read_form
from smartpractice.web.metrics import count_login
from smartpractice.web.responses import render, see_other, user_message

# What a refused TAN entry answers: too many from one connection, or a wrong/old TAN.
THROTTLED = frozenset({"tan_throttled", "new_tan_throttled"})


def _signature(request: web.Request, invitation_id: int) -> str:
    return hmac.new(request.app[secret_key].encode(), f"guest:{invitation_id}".encode(), hashlib.sha256).hexdigest()[:32]


def remembered_invitation(request: web.Request) -> int | None:
    """The invitation this browser last came in with by TAN, if its cookie is genuine."""
    value = read_cookie(request, GUEST) or ""
    invitation_id, _, signature = value.partition(".")
    if not invitation_id.isdigit() or len(invitation_id) > 18:
        return None
    if not hmac.compare_digest(signature, _signature(request, int(invitation_id))):
        return None
    return int(invitation_id)


async def way_back(request: web.Request, consultation_id: int) -> str | None:
    """Where a guest whose session lapsed goes instead of the password login: the TAN page
    of the invitation they came in with, if it is one for this consultation."""
    invitation_id = remembered_invitation(request)
    if invitation_id is None:
        return None
    if await request.app[services_key].guest_access.consultation_of(invitation_id) != consultation_id:
        return None
    return str(request.app.router["guest_tan"].url_for())


def _landing(request: web.Request, consultation_id: int | None):
    if consultation_id is None:
        return request.app.router["guest"].url_for()
    return request.app.router["waiting_room"].url_for(id=str(consultation_id))


def _signed_in(request: web.Request, entry: GuestEntry) -> web.Response:
    """The session cookie lives as long as the session may (the invitation's end); the
    server still ends it after the idle time unless a waiting page keeps it alive."""
    response = see_other(_landing(request, entry.consultation_id))
    seconds = int((entry.expires_at - request.app[services_key].clock.now()).total_seconds())
    max_age = max(60, seconds)
    set_cookie(request, response, SESSION, entry.token, max_age=max_age)
    set_cookie(request, response, GUEST, f"{entry.invitation_id}.{_signature(request, entry.invitation_id)}",
               max_age=max_age)
    renew_csrf(request, response)
    return response


def _closed(request: web.Request, error: UserError) -> web.Response:
    context = {"error": user_message(request, error), "contact": error.params.get("contact", "")}
    return render(request, "invitation_invalid.html", context, status=410)


def _status(error: UserError) -> int:
    if error.code in THROTTLED:
        return 429
    return 409 if error.code == "tan_from_practice" else 401


async def _invitation_page(request: web.Request, ref: InvitationRef, actions: dict, *,
                           error: str | None = None, status: int = 200) -> web.StreamResponse:
    try:
        page = await request.app[services_key].guest_access.page(ref, language=request[language_key])
    except UserError as closed:
        return _closed(request, closed)
    guest = request.get(guest_session_key)
    if error is None and guest is not None and guest.invitation_id == page.welcome.invitation.id:
        # Still signed in on this device: the mail's link leads straight back in.
        return see_other(_landing(request, page.welcome.invitation.consultation_id))
    context = {"page": page, "error": error, "actions": actions, "form_token": new_token(),
               "sent": error is None and request.query.get("sent") == "1"}
    return render(request, "invitation_login.html", context, status=status)


async def _enter(request: web.Request, ref: InvitationRef, actions: dict) -> web.StreamResponse:
    form = await read_form(request)
    try:
        entry = await request.app[services_key].guest_access.log_in(
            ref, field(form, "tan", 40), address=client_address(request),
            user_agent=request.headers.get("User-Agent", ""), language=request[language_key],
        )
    except LinkInvalid as error:
        count_login(request, "tan", ok=False)
        return _closed(request, error)
    except UserError as error:
        count_login(request, "tan", ok=False)
        return await _invitation_page(request, ref, actions, error=user_message(request, error), status=_status(error))
    count_login(request, "tan", ok=True)
    return _signed_in(request, entry)


async def _new_tan(request: web.Request, ref: InvitationRef, actions: dict, back) -> web.StreamResponse:
    form = await read_form(request)
    try:
        await request.app[services_key].guest_access.send_new_tan(
            ref, address=client_address(request), language=request[language_key],
            form_token=field(form, "form_token", 64))
    except AlreadySubmitted:
        pass  # a second click or a reload: the first sending's mail is the one
    except LinkInvalid as error:
        return _closed(request, error)
    except UserError as error:
        return await _invitation_page(request, ref, actions, error=user_message(request, error), status=_status(error))
    return see_other(back.with_query(sent="1"))


def _link(request: web.Request) -> tuple[InvitationRef, dict]:
    token = request.match_info["token"]
    router = request.app.router
    actions = {"tan": router["invitation_login_submit"].url_for(token=token),
               "new_tan": router["invitation_new_tan"].url_for(token=token),
               "calendar": router["invitation_calendar"].url_for(token=token)}
    return InvitationRef(link=token), actions


def _remembered(request: web.Request) -> tuple[InvitationRef, dict] | None:
    invitation_id = remembered_invitation(request)
    if invitation_id is None:
        return None
    router = request.app.router
    actions = {"tan": router["guest_tan_submit"].url_for(), "new_tan": router["guest_new_tan"].url_for()}
    return InvitationRef(invitation_id=invitation_id), actions


async def tan_form(request: web.Request) -> web.StreamResponse:
    ref, actions = _link(request)
    return await _invitation_page(request, ref, actions)


async def tan_login(request: web.Request) -> web.StreamResponse:
    ref, actions = _link(request)
    return await _enter(request, ref, actions)


async def calendar(request: web.Request) -> web.StreamResponse:
    """"Add to calendar" on the invitation's page: uses nothing up, as the page does not."""
    ref, _ = _link(request)
    services = request.app[services_key]
    try:
        page = await services.guest_access.page(ref, language=request[language_key])
    except UserError as closed:
        return _closed(request, closed)
    invitation = page.welcome.invitation
    entry = None
    if invitation.consultation_id is not None:
        entry = await services.consultations.calendar_for_guest(
            invitation.consultation_id, page.welcome.practice, invitation.email, request[language_key])
    if entry is None:
        raise web.HTTPNotFound()
    return web.Response(text=entry, content_type="text/calendar", charset="utf-8",
                        headers={"Content-Disposition": 'attachment; filename="videosprechstunde.ics"'})


async def device_check(request: web.Request) -> web.StreamResponse:
    """Camera, microphone and speaker tried out before the day, with no consultation."""
    return render(request, "device_check.html", {})


async def new_tan(request: web.Request) -> web.StreamResponse:
    ref, actions = _link(request)
    return await _new_tan(request, ref, actions, request.app.router["invitation_login"].url_for(
        token=request.match_info["token"]))


async def resume_form(request: web.Request) -> web.StreamResponse:
    """The TAN page of the invitation this browser came in with (no link needed)."""
    remembered = _remembered(request)
    if remembered is None:
        return see_other(request.app.router["login"].url_for())
    return await _invitation_page(request, *remembered)


async def resume_login(request: web.Request) -> web.StreamResponse:
    remembered = _remembered(request)
    if remembered is None:
        return see_other(request.app.router["login"].url_for())
    return await _enter(request, *remembered)


async def resume_new_tan(request: web.Request) -> web.StreamResponse:
    remembered = _remembered(request)
    if remembered is None:
        return see_other(request.app.router["login"].url_for())
    return await _new_tan(request, *remembered, request.app.router["guest_tan"].url_for())


async def code_login(request: web.Request) -> web.StreamResponse:
    """"Log in with TAN" on the login page: the invitation's code and the TAN."""
    form = await read_form(request)
    code, tan = field(form, "code", 40), field(form, "tan", 40)
    try:
        entry = await request.app[services_key].guest_access.log_in(
            InvitationRef(code=code), tan, address=client_address(request),
            user_agent=request.headers.get("User-Agent", ""), language=request[language_key],
        )
    except UserError as error:
        count_login(request, "tan", ok=False)
        status = 410 if isinstance(error, LinkInvalid) else _status(error)
        return login_page(request, status=status, code=code, tan=tan, tan_error=user_message(request, error),
                          tan_contact=error.params.get("contact", ""))
    count_login(request, "tan", ok=True)
    return _signed_in(request, entry)


async def guest_page(request: web.Request) -> web.StreamResponse:
    """A guest whose invitation has no consultation (made before every invitation had one)."""
    guest = request.get(guest_session_key)
    if guest is None:
        target = "guest_tan" if remembered_invitation(request) is not None else "login"
        return see_other(request.app.router[target].url_for())
    try:
        page = await request.app[services_key].guest_access.page(
            InvitationRef(invitation_id=guest.invitation_id), language=request[language_key])
    except UserError as closed:
        return _closed(request, closed)
    if page.welcome.invitation.consultation_id is not None:
        return see_other(_landing(request, page.welcome.invitation.consultation_id))
    return render(request, "guest.html", {"page": page})
