"""Logs an operator can feed to a collector: one JSON object per record, the request id
that the response carries, no personal data, a traceback as one record; and a `Server`
header that names no versions."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys

import pytest
from aiohttp import ClientSession

from smartpractice import logs
from smartpractice.logs import AccessLogger, JsonFormatter, RefusedRequests
from tests.helpers import log_in, make_app, make_settings


@pytest.fixture
def json_log():
    """What `SMARTPRACTICE_LOG_FORMAT=json` writes, caught in a buffer: one list per read."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(name) for name in ("aiohttp.access", "aiohttp.server", "smartpractice")]
    server_filter = RefusedRequests()
    logging.getLogger("aiohttp.server").addFilter(server_filter)
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    logging.getLogger("aiohttp.server").removeFilter(server_filter)
    for logger in loggers:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


@pytest.fixture
async def server(aiohttp_server, tmp_path, database_url):
    return await aiohttp_server(make_app(make_settings(tmp_path, database_url)), access_log_class=AccessLogger)


async def test_one_json_line_per_request_with_the_id_the_response_carries(server, json_log):
    async with ClientSession() as session:
        response = await session.get(f"http://127.0.0.1:{server.port}/confirm/a-secret-token?email=erika@example.org")
        request_id = response.headers["X-Request-Id"]
        other = await session.get(f"http://127.0.0.1:{server.port}/privacy")
    assert len(request_id) == 16 and other.headers["X-Request-Id"] != request_id
    [line] = [entry for entry in json_log() if entry.get("request_id") == request_id]
    assert line["logger"] == "aiohttp.access" and line["level"] == "INFO"
    assert line["method"] == "GET" and line["route"] == "/confirm/{token}" and line["status"] == response.status
    assert isinstance(line["duration_ms"], float)
    text = json.dumps(json_log())
    for personal in ("a-secret-token", "erika", "127.0.0.1"):
        assert personal not in text


async def test_an_unhandled_error_is_one_record_with_its_traceback_and_request_id(
        aiohttp_server, tmp_path, database_url, json_log):
    async def broken(request):
        raise RuntimeError("boom")

    app = make_app(make_settings(tmp_path, database_url))
    app.router.add_get("/broken", broken, name="broken")
    server = await aiohttp_server(app, access_log_class=AccessLogger)
    async with ClientSession() as session:
        response = await session.get(f"http://127.0.0.1:{server.port}/broken")
    assert response.status == 500
    request_id = response.headers["X-Request-Id"]
    [error] = [entry for entry in json_log() if entry["level"] == "ERROR"]
    assert error["request_id"] == request_id and error["logger"] == "smartpractice.web.middlewares"
    assert "RuntimeError: boom" in error["exception"] and error["exception"].startswith("Traceback")
    [access] = [entry for entry in json_log() if entry["logger"] == "aiohttp.access"]
    assert access["request_id"] == request_id and access["status"] == 500 and access["route"] == "/broken"


def test_a_traceback_stays_inside_one_json_line():
    formatter = JsonFormatter()
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        record = logging.getLogger("smartpractice").makeRecord(
            "smartpractice", logging.ERROR, __file__, 1, "failed: %s", ("x",), exc_info=sys.exc_info())
    token = logs.REQUEST_ID.set("abc123")
    try:
        line = formatter.format(record)
    finally:
        logs.REQUEST_ID.reset(token)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed: x" and entry["request_id"] == "abc123"
    assert entry["exception"].startswith("Traceback") and "line one\nline two" in entry["exception"]


async def test_the_server_header_names_no_versions(server):
    async with ClientSession() as session:
        page = await session.get(f"http://127.0.0.1:{server.port}/login")
        missing = await session.get(f"http://127.0.0.1:{server.port}/no/such/page")
    assert page.headers["Server"] == missing.headers["Server"] == "smartpractice"
    # A request aiohttp's parser refuses is answered by aiohttp itself.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /login HTTP/1.1\r\nHost: localhost\r\nX-Nul: a\x00b\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(4096), 10)
    writer.close()
    assert b" 400 " in answer.split(b"\r\n")[0]
    assert b"Server: smartpractice\r\n" in answer
    assert b"aiohttp" not in answer and b"Python" not in answer


async def test_an_access_line_names_the_practice_a_page_acted_in(aiohttp_client, server, json_log, practice, clinician):
    client = await aiohttp_client(server)
    await log_in(client, "dr-berg")
    response = await client.get(f"/p/{practice.slug}/patients")
    assert response.status == 200
    [line] = [entry for entry in json_log() if entry.get("request_id") == response.headers["X-Request-Id"]]
    assert line["practice_id"] == practice.id and line["route"] == "/p/{slug}/patients"
    assert practice.slug not in json.dumps(line)
