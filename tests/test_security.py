"""Requests: CSRF, foreign origins, headers, body limits and error pages that leak nothing."""

from __future__ import annotations

import io
import re

from tests.helpers import csrf_token, log_in, post_form, totp_code


async def test_pages_carry_the_security_headers(client):
    response = await client.get("/login")
    headers = response.headers
    csp = headers["Content-Security-Policy"]
    for directive in ("script-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "camera=(self)" in headers["Permissions-Policy"] and "microphone=(self)" in headers["Permissions-Policy"]
    assert headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in headers  # only over https
    # Scripts come from files only (the web app's registration, static/web-app.js).
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", await response.text()) == []


async def test_post_without_csrf_token_is_refused(client, clinician):
    await csrf_token(client)  # has the cookie, but does not send the token
    response = await client.post("/login", data={"identifier": "dr-berg", "password": "x"})
    assert response.status == 403
    assert "laden Sie die Seite neu" in await response.text()


async def test_post_with_a_token_for_another_browser_is_refused(client, other_browser, clinician):
    foreign_token = await csrf_token(other_browser)
    await csrf_token(client)
    response = await client.post("/login", data={"identifier": "dr-berg", "password": "x", "csrf_token": foreign_token})
    assert response.status == 403


async def test_post_from_a_foreign_origin_is_refused_even_with_a_token(client, clinician):
    response = await post_form(
        client, "/login", {"identifier": "dr-berg", "password": "x"}, headers={"Origin": "https://evil.example"}
    )
    assert response.status == 403


async def test_cross_site_fetch_without_origin_is_refused(client, clinician):
    response = await post_form(
        client, "/login", {"identifier": "dr-berg", "password": "x"}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert response.status == 403


async def test_post_from_our_own_origin_is_accepted(client, settings, clinician):
    response = await post_form(
        client, "/login", {"identifier": "dr-berg", "password": "amber-violin-harbour-77"},
        headers={"Origin": settings.origin, "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status == 303


async def test_logout_needs_a_csrf_token(client, clinician):
    await log_in(client, "dr-berg")
    assert (await client.post("/logout")).status == 403
    assert (await client.get("/account", allow_redirects=False)).status == 200


async def test_oversized_body_gets_413(client, settings):
    token = await csrf_token(client)
    body = io.BytesIO(b"identifier=" + b"x" * settings.max_body_bytes + b"&password=y")
    response = await client.post(
        "/login",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": token, "Accept-Language": "en"},
    )
    assert response.status == 413
    assert "What you sent is too large." in await response.text()


async def test_unknown_page_is_a_plain_404(client):
    response = await client.get("/p/../../etc/passwd")
    assert response.status == 404
    text = await response.text()
    assert "Traceback" not in text and "aiohttp" not in text


async def test_wrong_method_is_405_with_allow_header(client):
    response = await client.delete("/login")
    assert response.status == 405
    assert "GET" in response.headers["Allow"]


async def test_malformed_form_body_is_400_not_500(client):
    token = await csrf_token(client)
    response = await client.post(
        "/login",
        data=b"--broken\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=broken", "X-CSRF-Token": token},
    )
    assert response.status in (400, 401)


async def test_next_parameter_cannot_leave_the_site(client, clinician):
    response = await post_form(
        client, "/login", {"identifier": "dr-berg", "password": "amber-violin-harbour-77", "next": "//evil.example/"}
    )
    # Staff go on to the second factor; the foreign target is dropped there as well.
    assert response.headers["Location"] == "/login/second-factor"
    code = await totp_code(client.app, "dr-berg")
    response = await post_form(client, "/login/second-factor", {"code": code, "next": "//evil.example/"})
    assert response.headers["Location"] == "/"
