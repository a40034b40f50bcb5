"""The schema: migrations match the tables, and the server refuses an out-of-date database."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from smartpractice.storage.engine import SchemaOutOfDate, alembic_config, create_engine, upgrade
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


async def test_the_treating_admins_migration_keeps_every_member_and_what_they_could_do(tmp_path):
    """0008: clinicians go on treating patients; admins and patients do not start to."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}"
    create_engine(url)  # makes the folder
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0007")
    engine = create_engine(url)
    now = "2026-12-01 10:00:00.000000"
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO practices (id, slug, name, created_at) VALUES (1, 'p', 'Praxis', :now)"),
                           {"now": now})
        for user_id, role in ((1, "admin"), (2, "clinician"), (3, "patient")):
            await conn.execute(text(
                "INSERT INTO users (id, username, username_key, email, email_key, display_name, must_change_password,"
                " created_at) VALUES (:id, :name, :name, :mail, :mail, :name, 0, :now)"),
                {"id": user_id, "name": role, "mail": f"{role}@example.org", "now": now})
            await conn.execute(text("INSERT INTO memberships (practice_id, user_id, role, created_at)"
                                    " VALUES (1, :id, :role, :now)"), {"id": user_id, "role": role, "now": now})
    await upgrade(url)
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT role, treats_patients FROM memberships ORDER BY user_id"))).all()
    await engine.dispose()
    assert [(role, bool(treats)) for role, treats in rows] == [("admin", False), ("clinician", True), ("patient", False)]
