"""Responses: pages rendered with Jinja2 and the request's catalog, and redirects."""

from __future__ import annotations

import functools
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup

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

# Inside the package, so that a wheel carries them (a link to the top-level folder in the repository).
TEMPLATES = Path(__file__).parents[1] / "templates"


@jinja2.pass_context
def _gettext(context, message: str) -> str:
    return context["translations"].gettext(message)


@jinja2.pass_context
def _ngettext(context, singular: str, plural: str, count: int) -> str:
    return context["translations"].ngettext(singular, plural, count)


def _formatted(message: Markup, variables: dict) -> Markup:
    # Most messages have no placeholder: `%` with nothing to fill in would only copy them.
    return message % variables if variables or "%" in message else message


def _translators(translations) -> dict:
    """`_`, `gettext` and `ngettext` bound to the request's catalog, behaving as Jinja's
    newstyle gettext does in an autoescaped template (the message is trusted, the values
    are escaped, `%` always formats). Given with each page, they spare every message the
    two further context look-ups the i18n extension's callables make."""

    # Markup: the messages are ours, from the catalogs, as Jinja's own callables trust them.
    def gettext(message: str, **variables) -> str:
        return _formatted(Markup(translations.gettext(message)), variables)  # noqa: S704

    def ngettext(singular: str, plural: str, count: int, **variables) -> str:
        variables.setdefault("num", count)
        return _formatted(Markup(translations.ngettext(singular, plural, count)), variables)  # noqa: S704

    return {"_": gettext, "gettext": gettext, "ngettext": ngettext}


def render(request: web.Request, template: str, context: dict | None = None, *, status: int = 200) -> web.Response:
    """Render a page with what every page needs: language, user, CSRF token, settings."""
    active = request.get(active_session_key)
    translations = request[translations_key]
    full = {
        "translations": translations,
        **_translators(translations),
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
        # Templates change with a release, not while serving: no stat() per template per request.
        auto_reload=False,
    )
    # For templates rendered without render()'s context (macros imported without it).
    environment.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]  # jinja2.ext.i18n adds it
    environment.globals["url"] = _url_builder(app.router)
    environment.filters["local"] = local
    # A time as people say it, in the practice's zone: "Dienstag, 1. Dezember 2026, 14:16 Uhr".
    environment.filters["spoken"] = spoken


def _url_builder(router: web.UrlDispatcher):
    """`url(name, **parts)` for templates, each URL built once: the routes do not change
    while serving, and building them with yarl took a sixth of a page's rendering."""

    @functools.lru_cache(maxsize=4096)
    def build(name: str, parts: tuple[tuple[str, str], ...]) -> str:
        return str(router[name].url_for(**dict(parts)))

    def url(name: str, **parts: str | int) -> str:
        # As aiohttp_jinja2's url(): ints become strings, anything else is a mistake.
        return build(name, tuple((key, str(value) if type(value) is int else value) for key, value in parts.items()))

    return url


def user_message(request: web.Request, error: UserError) -> str:
    """A UserError's message in the request's language, its parameters filled in."""
    return error.text(request[translations_key])


def see_other(location) -> web.Response:
    """A 303 redirect returned, not raised, so cookies can be set on it."""
    return web.Response(status=303, headers={"Location": str(location)})
