"""The operator's commands: each does what it says, prints it plainly, and leaves an audit
entry; every refusal is one clear line and exit code 1."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from aiohttp.test_utils import unused_port
from sqlalchemy import insert, select, update

from smartpractice.storage import mails as mail_store
from smartpractice.storage.engine import create_engine
from smartpractice.storage.tables import audit_log, mails, practices
from tests.helpers import PASSWORD, add_member, csrf_token, invoke, log_in, traces_of


async def audit_actions(engine, user_id: int, *, site_wide: bool = True) -> list[str]:
    """The operator's entries about the user (logins write their own, in the practice)."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(audit_log.c.action).where(
            audit_log.c.object_kind == "user", audit_log.c.object_id == str(user_id),
            audit_log.c.practice_id.is_(None) if site_wide else audit_log.c.action == "account_deleted"))
        return list(rows.scalars())


@pytest.mark.parametrize("command", [["user"], ["user", "reset-password"], ["user", "reset-second-factor"],
                                     ["user", "unlock"], ["user", "delete"], ["mail", "list"], ["mail", "retry"],
                                     ["mail", "test"], ["config", "check"], ["db", "current"], ["db", "downgrade"],
                                     ["send-reminders"], ["practice", "export"]])
async def test_every_admin_command_has_help(command, cli_env):
    result = await invoke([*command, "--help"], cli_env)
    assert result.exit_code == 0 and "Usage:" in result.output


async def test_reset_password_gives_a_working_initial_password_and_ends_sessions(client, other_browser, cli_env,
                                                                                 clinician, engine):
    await log_in(other_browser, "dr-berg")
    result = await invoke(["user", "reset-password", "dr-berg"], cli_env)
    assert result.exit_code == 0, result.output
    password = re.search(r"New initial password for dr-berg: (\S+)", result.output).group(1)
    assert (await other_browser.get("/account", allow_redirects=False)).status == 303  # logged out
    assert (await log_in(client, "dr-berg", PASSWORD)).status == 401
    assert (await log_in(client, "dr-berg", password)).status == 303
    assert (await client.get("/", allow_redirects=False)).headers["Location"] == "/account/password"
    assert await audit_actions(engine, clinician.user_id) == ["password_reset_by_operator"]


async def test_reset_second_factor_leads_to_a_new_app_at_the_next_login(client, cli_env, clinician, engine):
    result = await invoke(["user", "reset-second-factor", "dr-berg@example.org"], cli_env)
    assert result.exit_code == 0, result.output
    assert "Second factor of dr-berg removed" in result.output
    response = await client.post("/login", allow_redirects=False, data={
        "identifier": "dr-berg", "password": PASSWORD, "csrf_token": await _token(client)})
    assert response.status == 303
    assert (await client.get("/", allow_redirects=False)).headers["Location"] == "/account/two-factor/setup"
    again = await invoke(["user", "reset-second-factor", "dr-berg"], cli_env)
    assert "dr-berg had no second factor; nothing removed." in again.output
    assert await audit_actions(engine, clinician.user_id) == ["second_factor_reset_by_operator"] * 2


async def _token(client) -> str:
    return await csrf_token(client, "/login")


async def test_unlock_lifts_the_lock_of_failed_logins(client, cli_env, app, practice, engine):
    erika = await add_member(app, practice, "patient", "erika")
    for _ in range(10):
        await log_in(client, "erika", "wrong-password-123")
    assert (await log_in(client, "erika")).status == 401
    result = await invoke(["user", "unlock", "erika"], cli_env)
    assert result.exit_code == 0 and "erika can log in again" in result.output
    assert (await log_in(client, "erika")).status == 303
    assert await audit_actions(engine, erika) == ["account_unlocked_by_operator"]


async def test_delete_removes_the_account_even_of_staff(client, cli_env, clinician, engine):
    result = await invoke(["user", "delete", "dr-berg", "--yes"], cli_env)
    assert result.exit_code == 0 and "Account dr-berg deleted." in result.output
    assert (await log_in(client, "dr-berg")).status == 401
    # One entry in the practice the clinician worked in.
    assert await audit_actions(engine, clinician.user_id, site_wide=False) == ["account_deleted"]
    unknown = await invoke(["user", "delete", "dr-berg", "--yes"], cli_env)
    assert unknown.exit_code == 1 and "There is no user dr-berg." in unknown.output


async def test_delete_refuses_the_only_admin_of_a_practice(cli_env, practice, services):
    refused = await invoke(["user", "delete", "chef", "--yes"], cli_env)
    assert refused.exit_code == 1
    assert "chef is the only active admin of Praxis am Markt." in refused.output
    assert await services.users.by_login("chef") is not None  # nothing was deleted


async def test_mail_list_shows_the_queue_without_recipients_and_retry_makes_pending_due(cli_env, engine, clock):
    async with engine.begin() as conn:
        waiting = await mail_store.insert_mail(conn, kind="password_reset", recipient="erika@example.org", subject="s",
                                               text_body="t", html_body="h", message_id="<a@x>", now=clock.now())
        await conn.execute(mails.update().where(mails.c.id == waiting).values(
            attempts=3, next_attempt_at=clock.now() + timedelta(hours=1), last_error="SMTPConnectError: down"))
        failed = (await conn.execute(insert(mails).values(
            kind="confirm_email", recipient="otto@example.org", subject="s", text_body="", html_body="",
            message_id="<b@x>", status="failed", attempts=30, next_attempt_at=clock.now(), created_at=clock.now(),
            last_error="550 no such user"))).inserted_primary_key[0]
    listed = await invoke(["mail", "list"], cli_env)
    lines = listed.output.splitlines()
    assert [line.split("\t")[:4] for line in lines] == [
        [str(failed), "confirm_email", "failed", "tries 30"], [str(waiting), "password_reset", "pending", "tries 3"]]
    assert "SMTPConnectError: down" in lines[1] and "@example.org" not in listed.output
    only_failed = await invoke(["mail", "list", "--status", "failed"], cli_env)
    assert len(only_failed.output.splitlines()) == 1
    retried = await invoke(["mail", "retry"], cli_env)
    assert retried.exit_code == 0 and "1 pending mail(s) due now" in retried.output
    async with engine.connect() as conn:
        rows = dict((await conn.execute(select(mails.c.id, mails.c.next_attempt_at))).all())
    assert rows[waiting] < clock.now() + timedelta(minutes=5)
    assert await mail_entries(engine) == [(None, None, "mail_retried", "1")]  # the object id is the count


async def mail_entries(engine) -> list[tuple]:
    """The site-wide entries the mail commands write: practice, actor, action, object id."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(audit_log.c.practice_id, audit_log.c.actor_user_id, audit_log.c.action,
                                         audit_log.c.object_id).where(audit_log.c.object_kind == "mail"))
        return [tuple(row) for row in rows]


async def test_mail_test_goes_through_the_smtp_server(smtp, cli_env, engine):
    env = {**cli_env, "SMARTPRACTICE_SMTP_HOST": "127.0.0.1", "SMARTPRACTICE_SMTP_PORT": str(smtp.controller.port),
           "SMARTPRACTICE_SMTP_TLS": "none"}
    result = await invoke(["mail", "test", "ops@example.org"], env)
    assert result.exit_code == 0, result.output
    assert f"handed to the SMTP server 127.0.0.1:{smtp.controller.port}" in result.output
    [message] = await smtp.wait_for(1)
    assert message["To"] == "ops@example.org" and message["Subject"] == "Testmail von smartpractice"
    async with engine.connect() as conn:
        [mail_id] = (await conn.execute(select(mails.c.id).where(mails.c.kind == "test"))).scalars()
    assert await mail_entries(engine) == [(None, None, "test_mail_sent", str(mail_id))]


async def test_mail_test_says_when_the_smtp_server_is_down(cli_env):
    env = {**cli_env, "SMARTPRACTICE_SMTP_HOST": "127.0.0.1", "SMARTPRACTICE_SMTP_PORT": str(unused_port()),
           "SMARTPRACTICE_SMTP_TLS": "none"}
    result = await invoke(["mail", "test", "ops@example.org"], env)
    assert result.exit_code == 1
    assert "Test mail not sent (pending)" in result.output


async def test_config_check_names_each_part(smtp, cli_env):
    env = {**cli_env, "SMARTPRACTICE_SMTP_HOST": "127.0.0.1", "SMARTPRACTICE_SMTP_PORT": str(smtp.controller.port),
           "SMARTPRACTICE_SMTP_TLS": "none"}
    good = await invoke(["config", "check"], env)
    assert good.exit_code == 0, good.output
    assert good.output.splitlines()[0] == "settings: ok"
    assert "database: ok (schema " in good.output and "redis: not configured" in good.output
    assert f"smtp: ok (127.0.0.1:{smtp.controller.port}, none)" in good.output
    bad = await invoke(["config", "check"], {**env, "SMARTPRACTICE_REDIS_URL": "redis://127.0.0.1:1/0",
                                             "SMARTPRACTICE_SMTP_PORT": str(unused_port())})
    assert bad.exit_code == 1
    assert "redis: unreachable" in bad.output and "smtp: fails" in bad.output
    refused = await invoke(["config", "check"], {**env, "SMARTPRACTICE_SMTP_TLS": "sometimes"})
    assert refused.exit_code == 1 and "SMARTPRACTICE_SMTP_TLS must be one of" in refused.output
    unnamed = await invoke(["config", "check"], {**env, "SMARTPRACTICE_OPERATOR_CONTACT": ""})
    assert unnamed.exit_code == 1
    assert unnamed.output.splitlines()[0] == "settings: ok, but `serve` needs SMARTPRACTICE_OPERATOR_CONTACT"


async def test_db_current_and_downgrade_on_a_database_of_its_own(cli_env, tmp_path):
    env = {**cli_env, "SMARTPRACTICE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'own.sqlite3'}"}
    assert (await invoke(["db", "upgrade"], env)).exit_code == 0
    current = await invoke(["db", "current"], env)
    assert current.exit_code == 0 and current.output.endswith("up to date\n")
    head = re.search(r"code: (\S+)", current.output).group(1)
    down = await invoke(["db", "downgrade", "--yes", "--", "-1"], env)
    assert down.exit_code == 0, down.output
    after = await invoke(["db", "current"], env)
    assert f"code: {head}" in after.output and "differs" in after.output
    assert f"database: {head}" not in after.output
    previous = re.search(r"database: (\S+)", after.output).group(1)
    assert f"Database schema downgraded to -1 (now at {previous})." in down.output
    # A site-wide entry without an actor names the revision the schema is now at.
    own = create_engine(env["SMARTPRACTICE_DATABASE_URL"])
    try:
        async with own.connect() as conn:
            entries = [tuple(row) for row in await conn.execute(select(
                audit_log.c.practice_id, audit_log.c.actor_user_id, audit_log.c.action, audit_log.c.object_kind,
                audit_log.c.object_id))]
    finally:
        await own.dispose()
    assert entries == [(None, None, "schema_downgraded", "schema", previous)]
    # Below the audit log's own revision there is nowhere to write it, and the command says so.
    below = await invoke(["db", "downgrade", "--yes", "0003"], env)
    assert below.exit_code == 0, below.output
    assert "no audit entry was written" in below.output
    assert (await invoke(["db", "upgrade"], env)).exit_code == 0
    assert (await invoke(["db", "current"], env)).output.endswith("up to date\n")


async def test_send_reminders_runs_once(cli_env):
    result = await invoke(["send-reminders"], cli_env)
    assert result.exit_code == 0 and result.output == "reminders: queued 0\n"


async def test_a_practice_is_deleted_only_after_its_notice_period_with_its_own_people(
        client, app, services, clock, cli_env, engine, practice, clinician):
    erika = await add_member(app, practice, "patient", "erika")
    other = (await services.practices.create("Praxis am See", admin_email="see@example.org", admin_username="see-admin")).practice
    await add_member(app, other, "patient", "otto")
    active = await invoke(["practice", "delete", practice.slug, "--yes"], cli_env)
    assert active.exit_code == 1 and "once it has been suspended for 30 days" in active.output
    await services.operator.suspend(practice.id, actor=None)
    async with engine.begin() as conn:  # suspended 31 days ago
        await conn.execute(update(practices).where(practices.c.id == practice.id).values(
            suspended_at=clock.now() - timedelta(days=31)))
    result = await invoke(["practice", "delete", practice.slug, "--yes"], cli_env)
    assert result.exit_code == 0, result.output
    # Erika, Dr. Berg and the admin "chef" belonged only to this practice.
    assert f"Practice {practice.slug} deleted, with 3 account(s)" in result.output
    assert (await log_in(client, "erika")).status == 401
    assert (await log_in(client, "otto")).status == 303
    assert await traces_of(engine, "erika", "dr-berg", "Praxis am Markt", "chef@") == []
    async with engine.connect() as conn:
        actions = [tuple(row) for row in await conn.execute(select(audit_log.c.action, audit_log.c.object_id).where(
            audit_log.c.practice_id.is_(None)).order_by(audit_log.c.id))]
    assert ("practice_deleted", str(practice.id)) in actions
    assert ("account_deleted", str(erika)) in actions and ("account_deleted", str(clinician.user_id)) in actions
