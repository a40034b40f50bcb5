"""Cookie names and flags (ASVS 3.3): HttpOnly, SameSite, and Secure with `__Host-` on https."""

from __future__ import annotations

from aiohttp import web

from smartpractice.config import Settings
from smartpractice.keys import settings_key

SESSION = "sp_session"
CSRF = "sp_csrf"
LANGUAGE = "sp_lang"
# Which invitation a TAN guest came in with, signed: after their session lapses, the way
# back is that invitation's TAN page, not the password login (web/guest.py).
GUEST = "sp_guest"
# TANs the clinician passes on, from a form's POST to the page it leads to (web/handover.py).
HANDOVER = "sp_handover"
# Accounts this browser has logged in to, signed (accounts/devices.py): their owners are
# not locked out by strangers' wrong passwords.
DEVICE = "sp_device"
DEVICE_DAYS = 365


def cookie_name(settings: Settings, base: str) -> str:
    return f"__Host-{base}" if settings.https else base


def read_cookie(request: web.Request, base: str) -> str | None:
    return request.cookies.get(cookie_name(request.app[settings_key], base))


def set_cookie(request: web.Request, response: web.StreamResponse, base: str, value: str, *, max_age: int | None = None) -> None:
    settings = request.app[settings_key]
    response.set_cookie(
        cookie_name(settings, base),
        value,
        path="/",
        max_age=max_age,
        httponly=True,
        secure=settings.https,
        samesite="Lax",  # Strict would drop the session when a patient follows a mail link
    )


def clear_cookie(request: web.Request, response: web.StreamResponse, base: str) -> None:
    settings = request.app[settings_key]
    response.del_cookie(cookie_name(settings, base), path="/", secure=settings.https, httponly=True, samesite="Lax")
