"""Self-registration: the practice's link, QR code and settings; the public form."""

from __future__ import annotations

import io
import re

import segno
from aiohttp import web

from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.keys import language_key, services_key
from smartpractice.onboarding.registration import Applicant, RegistrationClosed
from smartpractice.submissions import AlreadySubmitted, Once, new_token
from smartpractice.web.client import client_address
from smartpractice.web.forms import field, read_form
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.session import require_admin, require_staff

TYPED_FIELDS = ("display_name", "email", "username", "date_of_birth")
# Large modules and medium error correction still scan from a poster across a waiting room.
QR_SCALE = 10


async def _admin(request: web.Request):
    active, membership = await require_admin(request, request.match_info["slug"])
    return active, membership.practice


async def _link(request: web.Request):
    """The practice (for its staff) and the absolute registration URL."""
    _, membership = await require_staff(request, request.match_info["slug"])
    services = request.app[services_key]
    options = await services.registrations.options(membership.practice)
    assert options.code is not None, "options() makes the code the first time"
    return membership, options, services.links.url("register", code=options.code)


async def page(request: web.Request) -> web.StreamResponse:
    membership, options, link = await _link(request)
    context = {"practice": membership.practice, "options": options, "link": link,
               "is_admin": membership.role == "admin", "saved": request.query.get("saved")}
    return render(request, "registration.html", context)


def _qr(url: str, kind: str, **options) -> bytes:
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind=kind, scale=QR_SCALE, border=4, **options)
    return buffer.getvalue()


async def qr_svg(request: web.Request) -> web.StreamResponse:
    _, _, url = await _link(request)
    return web.Response(body=_qr(url, "svg", xmldecl=False), content_type="image/svg+xml")


async def qr_png(request: web.Request) -> web.StreamResponse:
    _, _, url = await _link(request)
    return web.Response(body=_qr(url, "png"), content_type="image/png")


async def configure(request: web.Request) -> web.StreamResponse:
    active, practice = await _admin(request)
    form = await read_form(request)
    enabled, ask_date_of_birth = (field(form, name, 8) == "on" for name in ("enabled", "ask_date_of_birth"))
    await request.app[services_key].registrations.configure(
        practice, enabled=enabled, ask_date_of_birth=ask_date_of_birth, actor=active.user.id
    )
    return see_other(request.app.router["registration"].url_for(slug=practice.slug).with_query(saved="settings"))


async def renew(request: web.Request) -> web.StreamResponse:
    active, practice = await _admin(request)
    await request.app[services_key].registrations.renew(practice, actor=active.user.id)
    return see_other(request.app.router["registration"].url_for(slug=practice.slug).with_query(saved="link"))


async def _open(request: web.Request):
    try:
        return await request.app[services_key].registrations.open(request.match_info["code"]), None
    except RegistrationClosed:
        return None, render(request, "register_closed.html", {}, status=404)


def _form_page(request, opened, typed: dict, error: str | None, consent: bool, status: int = 200):
    context = {"practice": opened.practice, "ask_date_of_birth": opened.ask_date_of_birth,
               "code": request.match_info["code"], "form": typed, "consent": consent, "error": error,
               "form_token": new_token()}
    return render(request, "register.html", context, status=status)


# A practice's code as new_code() makes it (URL-safe base64), or the whole link pasted.
CODE = re.compile(r"(?:.*/register/)?([A-Za-z0-9_-]{4,64})/?")


async def find_by_code(request: web.Request) -> web.StreamResponse:
    """The start page's "register with your practice's code": on to that practice's form
    (which says so when the code is unknown or registration closed)."""
    typed = request.query.get("code", "")[:300].strip()
    match = CODE.fullmatch(typed)
    if match is None:
        error = UserError("registration_code_invalid",
                          N_("Please enter the registration code or link your practice gave you."))
        context = {"code": typed, "error": user_message(request, error)}
        return render(request, "start.html", context, status=400)
    return see_other(request.app.router["register"].url_for(code=match.group(1)))


async def register_form(request: web.Request) -> web.StreamResponse:
    opened, closed = await _open(request)
    if closed is not None:
        return closed
    return _form_page(request, opened, dict.fromkeys(TYPED_FIELDS, ""), None, consent=False)


async def register(request: web.Request) -> web.StreamResponse:
    opened, closed = await _open(request)
    if closed is not None:
        return closed
    form = await read_form(request)
    typed = {name: field(form, name, 254) for name in TYPED_FIELDS}
    consent = field(form, "consent", 8) == "yes"
    applicant = Applicant(
        password=field(form, "password", 4096),
        password_repeat=field(form, "password_repeat", 4096),
        consent=consent,
        language=request[language_key],
        **typed,
    )
    # Anonymous: the token alone, random and unguessable, tells one sending from another.
    once = Once("register", field(form, "form_token", 64))
    try:
        await request.app[services_key].registrations.register(
            request.match_info["code"], applicant, address=client_address(request), once=once
        )
    except AlreadySubmitted:
        pass  # a reload or a second click: the first sending registered
    except RegistrationClosed:
        return render(request, "register_closed.html", {}, status=404)
    except UserError as error:
        return _form_page(request, opened, typed, user_message(request, error), consent, status=400)
    return render(request, "register_done.html", {"practice": opened.practice})
