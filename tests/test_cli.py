"""The `smartpractice` command: its contract is public (docs/deployment.md)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import invoke, log_in


@pytest.mark.parametrize("command", [[], ["serve"], ["db"], ["db", "upgrade"], ["create-practice"], ["create-operator"], ["purge"]])
def test_every_command_has_help(command):
    result = subprocess.run([sys.executable, "-m", "smartpractice", *command, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "Usage: python -m smartpractice" in result.stdout


async def test_create_practice_prints_a_working_initial_password(client, cli_env):
    result = await invoke(["create-practice", "Praxis Dr. Weiß", "--admin-email", "weiss@example.org", "--admin-username", "weiss"], cli_env)
    assert result.exit_code == 0, result.output
    assert "Practice: Praxis Dr. Weiß (praxis-dr-weiss)" in result.output
    password = re.search(r"Initial password: (\S+)", result.output).group(1)
    response = await log_in(client, "weiss", password)
    assert response.status == 303
    assert (await client.get("/", allow_redirects=False)).headers["Location"] == "/account/password"


async def test_create_practice_refuses_a_taken_username(client, cli_env, clinician):
    args = ["create-practice", "Praxis Zwei", "--admin-email", "new@example.org", "--admin-username", "dr-berg"]
    result = await invoke(args, cli_env)
    assert result.exit_code == 1
    assert "This user name is already taken." in result.output


async def test_purge_dry_run_counts_and_keeps_then_purge_deletes(client, other_browser, clock, cli_env, clinician):
    clock.advance(days=-1)  # the CLI runs on the real clock: this session ended yesterday
    await log_in(other_browser, "dr-berg")
    clock.advance(days=1)
    await log_in(client, "dr-berg")  # and this one is current
    dry = await invoke(["purge", "--dry-run"], cli_env)
    assert "login sessions: would delete 1" in dry.output
    real = await invoke(["purge"], cli_env)
    assert "login sessions: deleted 1" in real.output
    again = await invoke(["purge"], cli_env)
    assert "login sessions: deleted 0" in again.output
    assert (await client.get("/account", allow_redirects=False)).status == 200


async def test_db_upgrade_is_idempotent(cli_env):
    result = await invoke(["db", "upgrade"], cli_env)
    assert result.exit_code == 0
    assert "Database schema is up to date." in result.output


async def test_retention_above_the_ceiling_is_refused_at_start(cli_env):
    result = await invoke(["purge"], {**cli_env, "SMARTPRACTICE_RETENTION_DAYS": "120"})
    assert result.exit_code == 1
    assert "at most three months" in result.output
