"""GET /healthz: 200 while the database and the room state answer, 503 when one does not
(Redis unreachable: tests/test_redis_outage.py)."""

from __future__ import annotations

from smartpractice.keys import engine_key
from tests.helpers import make_app, make_settings


async def test_healthy(client):
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "database": "ok", "rooms": "ok"}


async def test_database_gone_gives_503(aiohttp_client, tmp_path, clock):
    database = tmp_path / "own.sqlite3"
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{database}", AUTO_MIGRATE="always")
    client = await aiohttp_client(make_app(settings, clock=clock))
    assert (await client.get("/healthz")).status == 200
    # The database file is replaced by an empty one: it opens, but our schema is gone.
    await client.app[engine_key].dispose()
    database.rename(tmp_path / "moved-away.sqlite3")
    response = await client.get("/healthz")
    assert response.status == 503
    assert (await response.json())["status"] == "unavailable"
