"""Responses: pages rendered with Jinja2 and the request's catalog, and redirects."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from smartpractice.errors import UserError
from smartpractice.keys import (
    active_session_key,
    guest_session_key,
    language_key,
    settings_key,
    translations_key,
)
from smartpractice.times import local, spoken
from smartpractice.web.csrf import csrf_token, send_nonce

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@jinja2.pass_context
def _gettext(context, message: str) -> str:
    return context["translations"].gettext(message)


@jinja2.pass_context
def _ngettext(context, singular: str, plural: str, count: int) -> str:
    return context["translations"].ngettext(singular, plural, count)


def render(request: web.Request, template: str, context: dict | None = None, *, status: int = 200) -> web.Response:
    """Render a page with what every page needs: language, user, CSRF token, settings."""
    active = request.get(active_session_key)
    full = {
        "translations": request[translations_key],
        "language": request.get(language_key, "de"),
        "user": active.user if active else None,
        "guest": request.get(guest_session_key),
        "csrf_token": csrf_token(request),
        "settings": request.app[settings_key],
        **(context or {}),
    }
    response = aiohttp_jinja2.render_template(template, request, full, status=status)
    send_nonce(request, response)
    return response


def setup_templates(app: web.Application) -> None:
    environment = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(default=True),
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.install_gettext_callables(_gettext, _ngettext, newstyle=True)
    environment.filters["local"] = local
    # A time as people say it, in the practice's zone: "Dienstag, 1. Dezember 2026, 14:16 Uhr".
    environment.filters["spoken"] = spoken


def user_message(request: web.Request, error: UserError) -> str:
    """A UserError's message in the request's language, its parameters filled in."""
    return request[translations_key].gettext(error.message) % error.params


def see_other(location) -> web.Response:
    """A 303 redirect returned, not raised, so cookies can be set on it."""
    return web.Response(status=303, headers={"Location": str(location)})
