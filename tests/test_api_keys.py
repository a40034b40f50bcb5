"""API keys: shown once, stored as hashes, scoped to one practice, revocable from the CLI."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from sqlalchemy import select

from smartpractice.storage.tables import api_keys
from tests.helpers import invoke


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def stored_keys(engine) -> list:
    async with engine.connect() as conn:
        return list(await conn.execute(select(api_keys)))


async def test_key_is_stored_only_as_its_hash(services, engine, practice):
    created = await services.api_keys.create(practice, "Praxissoftware")
    assert created.key.startswith("spk_") and len(created.key) > 50
    [row] = await stored_keys(engine)
    assert row.key_hash == hashlib.sha256(created.key.encode()).hexdigest()
    assert row.prefix == created.key[:12]
    assert created.key not in [str(value) for value in row]
    assert row.name == "Praxissoftware" and row.practice_id == practice.id


async def test_each_key_is_different(services, practice):
    first = await services.api_keys.create(practice, "one")
    second = await services.api_keys.create(practice, "two")
    assert first.key != second.key and first.key[:12] != second.key[:12]


async def test_a_key_names_its_practice_and_records_its_use(services, practice, clock):
    created = await services.api_keys.create(practice, "Praxissoftware")
    assert (await services.api_keys.authenticate(created.key)) == practice
    [key] = await services.api_keys.list(practice.id)
    assert key.last_used_at == clock.now()


@pytest.mark.parametrize("wrong", ["", "spk_", "spk_00000000_" + "A" * 43, "Bearer x", "spk_\udcff", "spk_" + "a" * 500])
async def test_anything_but_an_issued_key_authenticates_nobody(services, practice, wrong):
    await services.api_keys.create(practice, "Praxissoftware")
    assert await services.api_keys.authenticate(wrong) is None


async def test_a_revoked_key_authenticates_nobody(services, practice):
    created = await services.api_keys.create(practice, "Praxissoftware")
    await services.api_keys.revoke(practice.id, created.key_id)
    assert await services.api_keys.authenticate(created.key) is None
    [key] = await services.api_keys.list(practice.id)
    assert key.revoked_at is not None


async def test_a_practice_cannot_revoke_another_practices_key(services, practice):
    other = (await services.practices.create("Praxis am See", admin_email="see@example.org", admin_username="see-admin")).practice
    created = await services.api_keys.create(practice, "Praxissoftware")
    with pytest.raises(Exception, match="api_key_not_found"):
        await services.api_keys.revoke(other.id, created.key_id)
    assert await services.api_keys.authenticate(created.key) == practice


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
async def test_a_key_needs_a_short_name(services, practice, name):
    with pytest.raises(Exception, match="api_key_name_invalid"):
        await services.api_keys.create(practice, name)


@pytest.mark.parametrize("command", [["api-key"], ["api-key", "create"], ["api-key", "list"], ["api-key", "revoke"]])
def test_every_api_key_command_has_help(command):
    result = subprocess.run([sys.executable, "-m", "smartpractice", *command, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "Usage: python -m smartpractice" in result.stdout


async def test_cli_creates_lists_and_revokes_a_key(client, cli_env, practice):
    created = await invoke(["api-key", "create", "--practice", practice.slug, "--name", "Praxis-EDV"], cli_env)
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("spk_") and "\n" not in key
    assert "will not be shown again" in created.stderr
    assert (await client.get("/api/v1/patients/1", headers=bearer(key))).status == 404

    listed = await invoke(["api-key", "list", "--practice", practice.slug], cli_env)
    assert listed.exit_code == 0
    assert key[:12] in listed.output and "Praxis-EDV" in listed.output and "active" in listed.output
    assert key not in listed.output
    key_id = listed.output.split("\t")[0]

    revoked = await invoke(["api-key", "revoke", "--practice", practice.slug, key_id], cli_env)
    assert revoked.exit_code == 0, revoked.output
    assert f"API key {key_id} revoked." in revoked.output
    assert (await client.get("/api/v1/patients/1", headers=bearer(key))).status == 401
    assert "revoked" in (await invoke(["api-key", "list", "--practice", practice.slug], cli_env)).output


async def test_cli_refuses_an_unknown_practice_and_key(client, cli_env, practice):
    unknown = await invoke(["api-key", "create", "--practice", "no-such-practice"], cli_env)
    assert unknown.exit_code == 1
    assert "There is no practice 'no-such-practice'." in unknown.output
    missing = await invoke(["api-key", "revoke", "--practice", practice.slug, "999"], cli_env)
    assert missing.exit_code == 1
    assert "no active API key with the id 999" in missing.output
    empty = await invoke(["api-key", "list", "--practice", practice.slug], cli_env)
    assert "No API keys." in empty.output
