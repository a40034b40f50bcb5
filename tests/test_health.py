"""GET /healthz: 200 while the database and the room state answer, 503 when one does not
(Redis unreachable: tests/test_redis_outage.py)."""

from __future__ import annotations

from datetime import timedelta

from smartpractice.keys import draining_key, engine_key, mail_sender_key
from smartpractice.storage import mails
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


async def test_ready_names_each_part(client):
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready", "database": "ok", "rooms": "ok", "mail": "ok",
                                     "stopping": False}


async def test_not_ready_while_a_due_mail_waits_with_no_sender(client, app, clock):
    app[mail_sender_key].stop()
    # Due a minute from now, so that a round of the stopping sender cannot take it.
    async with app[engine_key].begin() as conn:
        await mails.insert_mail(conn, kind="password_reset", recipient="someone@example.org", subject="s",
                                text_body="t", html_body="h", message_id="<m@x>", now=clock.now() + timedelta(minutes=1))
    assert (await client.get("/readyz")).status == 200
    clock.advance(minutes=20)
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["mail"] == "stalled"
    # Liveness is another question: the process is fine, restarting it would not help.
    assert (await client.get("/healthz")).status == 200


async def test_not_ready_once_stopping(client, app):
    await app[draining_key].start()
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["stopping"] is True
