"""Self-registration: the practice's link, QR code and settings; the public form."""

from __future__ import annotations

import io

import segno
from aiohttp import web

from smartpractice.errors import UserError
from smartpractice.keys import language_key, services_key
from smartpractice.onboarding.registration import Applicant, RegistrationClosed
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
               "code": request.match_info["code"], "form": typed, "consent": consent, "error": error}
    return render(request, "register.html", context, status=status)


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
    try:
        await request.app[services_key].registrations.register(
            request.match_info["code"], applicant, address=client_address(request)
        )
    except RegistrationClosed:
        return render(request, "register_closed.html", {}, status=404)
    except UserError as error:
        return _form_page(request, opened, typed, user_message(request, error), consent, status=400)
    return render(request, "register_done.html", {"practice": opened.practice})
