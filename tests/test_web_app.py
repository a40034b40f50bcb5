"""The web app's files as the server hands them out: the manifest in German and English,
the service worker at the root with its version, the offline page without anything of the
person who fetched it, and icons that are what tools/icons.py draws at the sizes named.
(tests/test_browser_web_app.py installs it in Chromium.)"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import pytest

from smartpractice.web.web_app import ICONS, OFFLINE_FILES, STATIC, WebApp, web_app_key
from tests.helpers import PASSWORD, add_member, log_in

# tools/ holds scripts, not a package.
_spec = importlib.util.spec_from_file_location("icons", Path(__file__).resolve().parents[1] / "tools" / "icons.py")
assert _spec is not None and _spec.loader is not None
drawing = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(drawing)


@pytest.mark.parametrize(("language", "name", "short"), [
    ("de", "smartpractice Videosprechstunde", "Sprechstunde"), ("en", "smartpractice video consultation", "Consultation")])
async def test_the_manifest_speaks_the_pages_language(client, language, name, short):
    page = await (await client.get("/login", headers={"Accept-Language": language})).text()
    assert f'<link rel="manifest" href="/manifest.webmanifest?lang={language}">' in page
    answer = await client.get(f"/manifest.webmanifest?lang={language}", headers={"Accept-Language": "de"})
    assert answer.content_type == "application/manifest+json"
    manifest = await answer.json(content_type=None)
    assert (manifest["name"], manifest["short_name"], manifest["lang"]) == (name, short, language)
    assert manifest["id"] == manifest["start_url"] == manifest["scope"] == "/"
    assert manifest["display"] == "standalone" and manifest["theme_color"] == "#1d5c63"
    assert f'<meta name="theme-color" content="{manifest["theme_color"]}">' in page
    # Without ?lang= (a browser that dropped it) the request's language.
    assert (await (await client.get("/manifest.webmanifest", headers={"Accept-Language": "en"})).json(
        content_type=None))["lang"] == "en"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_every_icon_has_the_size_the_manifest_names():
    for name, sizes, _ in ICONS:
        assert "x".join(map(str, _png_size((STATIC / name).read_bytes()))) == sizes, name
    assert _png_size((STATIC / "icons" / "apple-touch-icon.png").read_bytes()) == (180, 180)
    assert {f"icons/{name}" for name in drawing.ICONS} == {name for name, _, _ in ICONS} | {"icons/apple-touch-icon.png"}


@pytest.mark.parametrize("name", ["apple-touch-icon.png", "icon-maskable-192.png", "icon-192.png"])
def test_the_committed_icons_are_what_the_script_draws(name):
    # The 512 px ones take seconds to draw; they share every line of code with these.
    size, rounded = drawing.ICONS[name]
    assert drawing.draw(size, rounded) == (STATIC / "icons" / name).read_bytes()


async def test_the_service_worker_is_served_at_the_root_with_its_version(client, app):
    answer = await client.get("/service-worker.js?lang=en")
    assert answer.status == 200 and answer.content_type == "text/javascript"
    script = await answer.text()
    version = app[web_app_key].version
    assert f'const CACHE = "smartpractice-{version}-en";' in script
    files = ", ".join(f'"{path}"' for path in ["/offline?lang=en", *(f"/static/{name}" for name in OFFLINE_FILES)])
    assert f"const FILES = [{files}];" in script
    # A worker served from /static/ could control nothing but /static/.
    assert "Service-Worker-Allowed" not in answer.headers
    assert version == WebApp.from_files().version and len(version) == 16


async def test_the_offline_page_holds_nothing_of_the_person_who_fetched_it(client, practice):
    await add_member(client.app, practice, "patient", "erika-mustermann")
    assert (await log_in(client, "erika-mustermann", PASSWORD)).status == 303
    client.session.cookie_jar.clear(lambda cookie: cookie.key.endswith("csrf"))
    answer = await client.get("/offline?lang=de")
    page = await answer.text()
    assert answer.status == 200 and "Keine Verbindung" in page
    for personal in ("Erika", "erika", "csrf", "Praxis am Markt", "logout"):
        assert personal not in page
    assert "Set-Cookie" not in answer.headers
    english = await (await client.get("/offline?lang=en")).text()
    assert '<html lang="en">' in english and "No connection" in english


async def test_the_web_app_files_are_reachable_before_the_first_password_is_chosen(client, services):
    # An initial password sends every page to the password form; a redirected worker
    # script fails to register, and the offline page would become the password form.
    created = await services.practices.create("Praxis Neu", admin_email="neu@example.org", admin_username="neu")
    assert (await log_in(client, "neu", created.admin_password)).status == 303
    assert (await client.get("/account", allow_redirects=False)).status == 303
    for path in ("/service-worker.js", "/offline", "/manifest.webmanifest"):
        assert (await client.get(path, allow_redirects=False)).status == 200, path
