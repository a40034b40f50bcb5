"""The schema: migrations match the tables, and the server refuses an out-of-date database."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from smartpractice.storage.engine import SchemaOutOfDate, create_engine
from smartpractice.storage.tables import metadata
from tests.helpers import make_app, make_settings


async def test_migrations_produce_exactly_the_declared_tables(database_url):
    engine = create_engine(database_url)
    async with engine.connect() as conn:
        differences = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
    await engine.dispose()
    assert differences == []


async def test_server_refuses_to_start_on_an_unmigrated_database(aiohttp_client, tmp_path):
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}", AUTO_MIGRATE="never")
    with pytest.raises(SchemaOutOfDate, match="smartpractice db upgrade"):
        await aiohttp_client(make_app(settings))


async def test_embedded_default_upgrades_itself(aiohttp_client, tmp_path):
    settings = make_settings(tmp_path, "", AUTO_MIGRATE="sqlite")
    client = await aiohttp_client(make_app(settings))
    assert (await client.get("/healthz")).status == 200
    assert (tmp_path / "smartpractice.sqlite3").exists()
