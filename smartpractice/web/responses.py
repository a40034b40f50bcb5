"""Responses: pages rendered with Jinja2 and the request's catalog, and redirects."""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2
from aiohttp import web
from markupsafe import Markup

from smartpractice.errors import UserError
from smartpractice.i18n import DEFAULT_LANGUAGE, LANGUAGES
from smartpractice.keys import (
    active_session_key,
    catalogs_key,
    guest_session_key,
    language_key,
    settings_key,
    translations_key,
)
from smartpractice.times import local, spoken, stamped
from smartpractice.web.csrf import csrf_token, send_nonce
from smartpractice.web.templates import environments, formatted

# The Jinja environment of each language (web/templates.py).
templates_key = web.AppKey("templates", dict[str, jinja2.Environment])

# Inside the package, so that a wheel carries them (a link to the top-level folder in the repository).
TEMPLATES = Path(__file__).parents[1] / "templates"


@jinja2.pass_context
def _gettext(context, message: str) -> str:
    return context["translations"].gettext(message)


@jinja2.pass_context
def _ngettext(context, singular: str, plural: str, count: int) -> str:
    return context["translations"].ngettext(singular, plural, count)


def translators(translations) -> dict:
    """`_`, `gettext` and `ngettext` bound to the request's catalog, behaving as Jinja's
    newstyle gettext does in an autoescaped template (the message is trusted, the values
    are escaped, `%` always formats). Given with each page, they spare every message the
    two further context look-ups the i18n extension's callables make."""

    # Markup: the messages are ours, from the catalogs, as Jinja's own callables trust them.
    def gettext(message: str, **variables) -> str:
        return formatted(Markup(translations.gettext(message)), variables)  # noqa: S704

    def ngettext(singular: str, plural: str, count: int, **variables) -> str:
        variables.setdefault("num", count)
        return formatted(Markup(translations.ngettext(singular, plural, count)), variables)  # noqa: S704

    return {"_": gettext, "gettext": gettext, "ngettext": ngettext}


def render(request: web.Request, template: str, context: dict | None = None, *, status: int = 200) -> web.Response:
    """Render a page with what every page needs: language, user, CSRF token, settings."""
    active = request.get(active_session_key)
    translations = request[translations_key]
    full = {
        "translations": translations,
        **translators(translations),
        "language": request.get(language_key, "de"),
        "user": active.user if active else None,
        "guest": request.get(guest_session_key),
        "csrf_token": csrf_token(request),
        "settings": request.app[settings_key],
        **(context or {}),
    }
    response = render_in(request, full["language"], template, full, status=status)
    send_nonce(request, response)
    return response


def render_in(request: web.Request, language: str, template: str, context: dict, *, status: int = 200,
              content_type: str = "text/html") -> web.Response:
    """A template rendered in the environment of `language`, whose compiled templates hold
    that language's fixed messages: `context["translations"]` must be the same language's."""
    environments = request.app[templates_key]
    environment = environments.get(language) or environments[DEFAULT_LANGUAGE]
    text = environment.get_template(template).render(context)
    return web.Response(text=text, status=status, content_type=content_type, charset="utf-8")


def setup_templates(app: web.Application) -> None:
    catalogs = app[catalogs_key]
    app[templates_key] = environments(
        jinja2.FileSystemLoader(TEMPLATES),
        {language: catalogs.get(language) for language in LANGUAGES},
        # The URLs are built once each (see _url_builder), the fixed ones into the templates.
        globals_={"url": _url_builder(app.router)},
        # spoken: a time as people say it, in the practice's zone: "Dienstag, 1. Dezember 2026,
        # 14:16 Uhr"; stamped: to the second, for lists (the audit log): "01.12.2026, 14:16:05".
        filters={"local": local, "spoken": spoken, "stamped": stamped},
        gettext=_gettext, ngettext=_ngettext,
    )


def _url_builder(router: web.UrlDispatcher):
    """`url(name, **parts)` for templates, each URL built once: the routes do not change
    while serving, and building them with yarl took a sixth of a page's rendering."""

    @functools.lru_cache(maxsize=4096)
    def build(name: str, parts: tuple[tuple[str, str], ...]) -> str:
        return str(router[name].url_for(**dict(parts)))

    def url(name: str, **parts: str | int) -> str:
        # Ints become strings (ids in templates); anything else is a mistake.
        return build(name, tuple((key, str(value) if type(value) is int else value) for key, value in parts.items()))

    return url


def user_message(request: web.Request, error: UserError) -> str:
    """A UserError's message in the request's language, its parameters filled in."""
    return error.text(request[translations_key])


def see_other(location) -> web.Response:
    """A 303 redirect returned, not raised, so cookies can be set on it."""
    return web.Response(status=303, headers={"Location": str(location)})
