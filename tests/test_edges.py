"""Edges a probe found: `next=` that leads off the site, and requests aiohttp's parser
refuses, which must not take the access log down with them."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import ClientSession
from yarl import URL

from smartpractice.logs import AccessLogger, RefusedRequests
from smartpractice.web.session import safe_next
from tests.helpers import PASSWORD, csrf_token, make_app, make_settings

SITE = URL("http://localhost:8080/")
BACKSLASHES = ["/\\evil.example", "\\/evil.example", "/\\/evil.example", "/%5C/evil.example".replace("%5C", "\\")]
CONTROLS = [f"/{chr(code)}/evil.example" for code in [*range(0x20), 0x7F, 0x85, 0xA0]]
OTHER_SITES = ["//evil.example", "https://evil.example", "/ /evil.example", "evil.example", "http:/evil.example"]


def where_a_browser_goes(location: str) -> URL:
    """A Location resolved as browsers do: tabs and line breaks dropped, `\\` read as `/`."""
    cleaned = "".join(c for c in location if c not in "\t\n\r").replace("\\", "/")
    return SITE.join(URL(cleaned, encoded=True))


@pytest.mark.parametrize("target", BACKSLASHES + CONTROLS + OTHER_SITES)
def test_next_refuses_anything_but_a_path_on_this_site(target):
    assert safe_next(target) is None


@pytest.mark.parametrize("target", ["/account", "/p/praxis/consultations?day=2026-12-01", "/c/12/call"])
def test_next_keeps_paths_on_this_site(target):
    assert safe_next(target) == target


@pytest.mark.parametrize("target", BACKSLASHES + CONTROLS[:: 4] + ["/\t/evil.example", "//evil.example"])
async def test_login_and_second_factor_stay_on_the_site(client, clinician, target):
    token = await csrf_token(client, "/login")
    response = await client.post("/login", allow_redirects=False, data={
        "identifier": "dr-berg", "password": PASSWORD, "next": target, "csrf_token": token})
    assert response.status == 303
    step = where_a_browser_goes(response.headers["Location"])
    assert step.host == "localhost" and step.path == "/login/second-factor"
    assert "next" not in step.query
    page = await client.get(f"/login?next={URL.build(path=target).raw_path}")
    assert "evil.example" not in await page.text()


async def _raw_request(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(1024), 10)
    writer.close()
    return answer


@pytest.fixture
def server_log():
    """The filter `smartpractice serve` puts on aiohttp's server log."""
    logger, refused = logging.getLogger("aiohttp.server"), RefusedRequests()
    logger.addFilter(refused)
    yield
    logger.removeFilter(refused)


@pytest.mark.parametrize("header", [b"X-Long: " + b"a" * 9000, b"X-Nul: a\x00b"])
async def test_a_request_the_parser_refuses_gets_400_one_access_line_and_no_traceback(
        aiohttp_server, tmp_path, database_url, caplog, server_log, header):
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    server = await aiohttp_server(make_app(make_settings(tmp_path, database_url)), access_log_class=AccessLogger)
    answer = await _raw_request(server.port, b"GET /login HTTP/1.1\r\nHost: localhost\r\n" + header + b"\r\n\r\n")
    assert answer.split(b" ")[1] == b"400"
    async with ClientSession() as session:  # the server still answers
        assert (await session.get(f"http://127.0.0.1:{server.port}/healthz")).status == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    refused = [line for line in lines if " 400 " in line]
    assert len(refused) == 1 and "(unmatched) 400" in refused[0], lines
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
    [warning] = [r.getMessage() for r in caplog.records if r.name == "aiohttp.server"]
    assert "refused" in warning and "\n" not in warning
