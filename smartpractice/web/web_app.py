"""The patient web app: the manifest that makes the site installable on a phone's home
screen, the service worker, and the offline page it shows.

The service worker keeps nothing but the offline page and the static files that page
needs. It never stores a page with a person in it, an API answer or anything else that
passed through it: pages and the API always come from the network, and a page that
cannot be fetched becomes the offline page (docs/web-app.md).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from smartpractice.i18n import LANGUAGES
from smartpractice.keys import catalogs_key, language_key
from smartpractice.web.responses import TEMPLATES, render_in, templates_key, translators

STATIC = Path(__file__).parents[1] / "static"
# The favicon's colour: the browser's bar and the splash screen around the icon.
THEME_COLOUR = "#1d5c63"
BACKGROUND_COLOUR = "#f4f6f8"
# What the offline page shows, and nothing else (tools/icons.py draws the icons).
OFFLINE_FILES = ("app.css", "offline.js", "favicon.svg", "icons/icon-192.png")
ICONS = (
    ("icons/icon-192.png", "192x192", "any"),
    ("icons/icon-512.png", "512x512", "any"),
    ("icons/icon-maskable-192.png", "192x192", "maskable"),
    ("icons/icon-maskable-512.png", "512x512", "maskable"),
)


@dataclass(frozen=True)
class WebApp:
    """What the service worker is built from, and its version: a hash of everything it
    caches, so that a release changing any of it installs a new worker and a new cache."""

    version: str

    @classmethod
    def from_files(cls) -> WebApp:
        digest = hashlib.sha256()
        parts = [TEMPLATES / "service-worker.js", TEMPLATES / "offline.html"]
        parts += [STATIC / name for name in OFFLINE_FILES]
        parts += sorted((Path(__file__).parents[1] / "locale").rglob("*.po"))
        for path in parts:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return cls(version=digest.hexdigest()[:16])


web_app_key = web.AppKey("web_app", WebApp)


def setup_web_app(app: web.Application) -> None:
    """After setup_templates: every page names the theme colour in its head."""
    app[web_app_key] = WebApp.from_files()
    for environment in app[templates_key].values():
        environment.globals["theme_colour"] = THEME_COLOUR


def _language(request: web.Request) -> str:
    """The page's language, which the page names in the link; else the request's."""
    asked = request.query.get("lang", "")
    return asked if asked in LANGUAGES else request[language_key]


def _static(request: web.Request, name: str) -> str:
    return str(request.app.router["static"].url_for(filename=name))


async def manifest(request: web.Request) -> web.StreamResponse:
    language = _language(request)
    _ = request.app[catalogs_key].get(language).gettext
    home = str(request.app.router["home"].url_for())
    body = {
        # The same app whichever language's manifest installed it.
        "id": home,
        "name": _("smartpractice video consultation"),
        "short_name": _("Consultation"),
        "description": _("Video consultations with your practice, in the browser: nothing to install from a store."),
        "lang": language,
        "dir": "ltr",
        "start_url": home,
        "scope": home,
        "display": "standalone",
        "background_color": BACKGROUND_COLOUR,
        "theme_color": THEME_COLOUR,
        "icons": [{"src": _static(request, name), "sizes": sizes, "type": "image/png", "purpose": purpose}
                  for name, sizes, purpose in ICONS],
    }
    return web.Response(text=json.dumps(body, ensure_ascii=False), content_type="application/manifest+json")


async def service_worker(request: web.Request) -> web.StreamResponse:
    language = _language(request)
    offline = str(request.app.router["offline"].url_for().with_query(lang=language))
    context = {
        "cache": f"smartpractice-{request.app[web_app_key].version}-{language}",
        "offline": offline,
        "files": [offline] + [_static(request, name) for name in OFFLINE_FILES],
    }
    return render_in(request, language, "service-worker.js", context, content_type="text/javascript")


async def offline(request: web.Request) -> web.StreamResponse:
    """Rendered without render()'s context on purpose: no user, no CSRF token, nothing
    that belongs to the person whose browser caches it."""
    language = _language(request)
    translations = request.app[catalogs_key].get(language)
    context = {"translations": translations, **translators(translations), "language": language}
    return render_in(request, language, "offline.html", context)
