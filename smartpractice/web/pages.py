"""Public pages anyone may read without logging in (KBV: terms readable without login)."""

from __future__ import annotations

from aiohttp import web

from smartpractice.keys import settings_key
from smartpractice.web.cookies import CSRF, DEVICE, GUEST, HANDOVER, LANGUAGE, SESSION, cookie_name
from smartpractice.web.responses import render


async def privacy(request: web.Request) -> web.StreamResponse:
    return render(request, "privacy.html", {})


async def impressum(request: web.Request) -> web.StreamResponse:
    """Who runs the service (§ 5 DDG), from SMARTPRACTICE_OPERATOR_*."""
    return render(request, "impressum.html", {})


async def terms(request: web.Request) -> web.StreamResponse:
    return render(request, "terms.html", {})


async def cookies(request: web.Request) -> web.StreamResponse:
    settings = request.app[settings_key]
    names = {base: cookie_name(settings, base) for base in (SESSION, CSRF, LANGUAGE, GUEST, HANDOVER, DEVICE)}
    return render(request, "cookies.html", {"names": names})
