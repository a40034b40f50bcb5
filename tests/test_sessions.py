"""Server-side sessions: cookie flags, rotation, timeouts, logout, log out everywhere."""

from __future__ import annotations

import hashlib
import re

from aiohttp import ClientSession
from sqlalchemy import select

from smartpractice.storage.tables import login_sessions
from tests.helpers import PASSWORD, add_member, log_in, make_app, make_settings, post_form


def session_cookie(response) -> str:
    [header] = [h for h in response.headers.getall("Set-Cookie") if "sp_session=" in h]
    return header


async def test_session_cookie_is_httponly_and_samesite(client, clinician):
    header = session_cookie(await log_in(client, "dr-berg"))
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
    assert "Secure" not in header  # plain http: a Secure cookie would never come back


async def test_https_base_url_gives_host_prefixed_secure_cookies(aiohttp_client, tmp_path, database_url, clock):
    settings = make_settings(tmp_path, database_url, BASE_URL="https://praxis.example.org")
    client = await aiohttp_client(make_app(settings, clock=clock))
    page = await client.get("/login")
    [csrf] = page.headers.getall("Set-Cookie")
    assert csrf.startswith("__Host-sp_csrf=") and "Secure" in csrf and "HttpOnly" in csrf
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_only_a_hash_of_the_session_id_is_stored(client, engine, clinician):
    response = await log_in(client, "dr-berg")
    token = response.cookies["sp_session"].value
    assert len(token) >= 43  # 256 bits, url-safe base64
    async with engine.connect() as conn:
        stored = (await conn.execute(select(login_sessions.c.token_hash))).scalars().all()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]


async def test_login_issues_a_new_session_id_each_time(client, clinician):
    first = (await log_in(client, "dr-berg")).cookies["sp_session"].value
    second = (await log_in(client, "dr-berg")).cookies["sp_session"].value
    assert first != second


async def test_forged_session_cookie_is_ignored(client):
    client.session.cookie_jar.update_cookies({"sp_session": "forged-value"})
    response = await client.get("/account", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/login")


async def test_idle_session_expires(client, clock, clinician):
    await log_in(client, "dr-berg")
    clock.advance(minutes=29)
    assert (await client.get("/account", allow_redirects=False)).status == 200
    clock.advance(minutes=30, seconds=1)
    response = await client.get("/account", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login?next=/account"


async def test_active_session_still_ends_at_the_absolute_limit(client, clock, clinician):
    await log_in(client, "dr-berg")
    for _ in range(11 * 3):  # a request every 20 minutes for 11 hours
        clock.advance(minutes=20)
        assert (await client.get("/account", allow_redirects=False)).status == 200
    clock.advance(hours=1)
    assert (await client.get("/account", allow_redirects=False)).status == 303


async def test_logout_ends_the_session_on_the_server(client, clinician):
    token = (await log_in(client, "dr-berg")).cookies["sp_session"].value
    response = await post_form(client, "/logout", {})
    assert response.status == 303
    # Replaying the old cookie from elsewhere no longer works.
    async with ClientSession(cookies={"sp_session": token}) as other:
        replay = await other.get(client.make_url("/account"), allow_redirects=False)
        assert replay.status == 303


async def test_log_out_everywhere_ends_all_sessions(client, other_browser, clinician):
    other = other_browser
    await log_in(other, "dr-berg")
    await log_in(client, "dr-berg")
    assert (await other.get("/account", allow_redirects=False)).status == 200
    response = await post_form(client, "/logout/everywhere", {})
    assert response.status == 303
    assert (await other.get("/account", allow_redirects=False)).status == 303
    assert (await client.get("/account", allow_redirects=False)).status == 303


async def test_account_page_lists_the_sessions(client, other_browser, clinician):
    await log_in(other_browser, "dr-berg")
    await log_in(client, "dr-berg")
    page = await (await client.get("/account")).text()
    assert "Tablet-Browser/1.0" in page


async def test_password_change_ends_other_sessions_and_rotates_this_one(client, other_browser, clinician):
    other = other_browser
    await log_in(other, "dr-berg")
    before = (await log_in(client, "dr-berg")).cookies["sp_session"].value
    response = await post_form(client, "/account/password", {
        "current_password": PASSWORD,
        "new_password": "quiet-meadow-lantern-42",
        "new_password_repeat": "quiet-meadow-lantern-42",
    })
    assert response.status == 303
    assert response.cookies["sp_session"].value != before
    assert (await client.get("/account", allow_redirects=False)).status == 200
    assert (await other.get("/account", allow_redirects=False)).status == 303
    client.session.cookie_jar.clear()
    assert (await log_in(client, "dr-berg", "quiet-meadow-lantern-42")).status == 303


async def test_one_other_session_can_be_ended_but_not_someone_elses(client, other_browser, app, engine, practice, clinician):
    await log_in(other_browser, "dr-berg")
    await log_in(client, "dr-berg")
    page = await (await client.get("/account")).text()
    [other_id] = re.findall(r'action="/account/sessions/(\d+)/end"', page)
    assert (await post_form(client, f"/account/sessions/{other_id}/end", {})).status == 303
    assert (await other_browser.get("/account", allow_redirects=False)).status == 303
    assert (await client.get("/account", allow_redirects=False)).status == 200

    await add_member(app, practice, "patient", "erika")
    await log_in(other_browser, "erika")
    async with engine.connect() as conn:
        [erika_session] = (await conn.execute(select(login_sessions.c.id).where(login_sessions.c.user_id != clinician.user_id))).scalars()
    assert (await post_form(client, f"/account/sessions/{erika_session}/end", {})).status == 404
    assert (await other_browser.get("/account", allow_redirects=False)).status == 200
