"""`smartpractice config check`, `db current`, `db downgrade`, `send-reminders`: what an
operator runs by hand or from a timer."""

from __future__ import annotations

import asyncio

import aiosmtplib
import click
from alembic.util import CommandError
from sqlalchemy.exc import DBAPIError

from smartpractice.audit import Audit
from smartpractice.cli import _run, _settings, db, main
from smartpractice.clock import Clock
from smartpractice.rooms import redis_state
from smartpractice.storage import audit as audit_store
from smartpractice.storage.engine import create_engine, current_revision, downgrade, head_revision

SMTP_CHECK_SECONDS = 10


@main.group()
def config() -> None:
    """The configuration (docs/configuration.md)."""


async def _database(settings) -> tuple[bool, str]:
    engine = create_engine(settings.database_url)
    try:
        async with asyncio.timeout(10), engine.connect() as conn:
            current = await current_revision(conn)
    except (OSError, DBAPIError, TimeoutError) as error:
        return False, f"unreachable ({type(error).__name__})"
    finally:
        await engine.dispose()
    head = head_revision(settings.database_url)
    if current != head:
        return False, f"schema at {current or 'none'}, the code needs {head}: run `smartpractice db upgrade`"
    return True, f"ok (schema {current})"


async def _redis(settings) -> tuple[bool, str]:
    if not settings.redis_url:
        return True, "not configured (rooms in this process's memory: one instance only)"
    client = redis_state.connect(settings.redis_url)
    try:
        async with asyncio.timeout(5):
            await client.ping()
    except Exception as error:  # noqa: BLE001 - any failure is the answer
        return False, f"unreachable ({type(error).__name__})"
    finally:
        await client.aclose()
    return True, "ok"


async def _smtp(settings) -> tuple[bool, str]:
    if not settings.smtp_host:
        return True, f"not configured (mails are written to {settings.outbox_dir})"
    smtp = aiosmtplib.SMTP(hostname=settings.smtp_host, port=settings.smtp_port, timeout=SMTP_CHECK_SECONDS,
                           use_tls=settings.smtp_tls == "tls", start_tls=settings.smtp_tls == "starttls")
    try:
        await smtp.connect()
        if settings.smtp_username:
            await smtp.login(settings.smtp_username, settings.smtp_password)
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        return False, f"fails ({type(error).__name__}: {error})"
    return True, f"ok ({settings.smtp_host}:{settings.smtp_port}, {settings.smtp_tls})"


@config.command("check")
def config_check() -> None:
    """Check every setting, and that the database, Redis and the SMTP server answer."""
    settings = _settings()  # a setting the service cannot run with stops here, naming it
    missing = settings.missing_operator_details()
    # `serve` refuses to start without them (except with --demo): say so before it does.
    click.echo(f"settings: ok{'' if not missing else ', but `serve` needs ' + ', '.join(missing)}")

    async def checks():
        return await asyncio.gather(_database(settings), _redis(settings), _smtp(settings))

    results = asyncio.run(checks())
    for name, (_, text) in zip(("database", "redis", "smtp"), results, strict=True):
        click.echo(f"{name}: {text}")
    if missing or not all(good for good, _ in results):
        raise click.ClickException("configuration check failed")


@db.command("current")
def db_current() -> None:
    """Show the schema revision of the database and the one this code needs."""
    settings = _settings()

    async def work():
        engine = create_engine(settings.database_url)
        try:
            async with engine.connect() as conn:
                return await current_revision(conn)
        finally:
            await engine.dispose()

    try:
        current = asyncio.run(work())
    except (OSError, DBAPIError) as error:
        raise click.ClickException(f"The database cannot be reached: {error}") from None
    head = head_revision(settings.database_url)
    click.echo(f"database: {current or 'none'}")
    click.echo(f"code: {head}")
    click.echo("up to date" if current == head else "differs: run `smartpractice db upgrade` (or the matching version)")


@db.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def db_downgrade(revision: str, yes: bool) -> None:
    """Take the schema back to REVISION (an id from `db current`, or `-- -1` for one step), to
    run an older version after a failed upgrade. Take a backup first: it may drop data."""
    settings = _settings()
    if not yes:
        click.confirm(f"Downgrade the database schema to {revision}? Columns and tables newer than it are dropped",
                      abort=True)
    try:
        asyncio.run(downgrade(settings.database_url, revision))
        now_at, recorded = asyncio.run(_record_downgrade(settings.database_url))
    except (OSError, DBAPIError) as error:
        raise click.ClickException(f"The database cannot be reached: {error}") from None
    except CommandError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Database schema downgraded to {revision} (now at {now_at or 'none'}).")
    if not recorded:
        click.echo("The audit log went with the schema: no audit entry was written.")


async def _record_downgrade(url: str) -> tuple[str | None, bool]:
    """The site-wide audit entry of a downgrade, written once it succeeded (the command line
    has no actor). The revision it reached, and whether that schema still has an audit log."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            now_at = await current_revision(conn)
            if not await audit_store.exists(conn):
                return now_at, False
            await Audit(engine=engine, clock=Clock()).record(conn, None, None, "schema_downgraded", "schema", now_at)
        return now_at, True
    finally:
        await engine.dispose()


@main.command("send-reminders")
def send_reminders() -> None:
    """Queue the reminder mails that are due now (the server does this every
    SMARTPRACTICE_HOUSEKEEPING_SECONDS; for a server that has it off)."""
    count = _run(_settings(), lambda services: services.reminders.send_due())
    click.echo(f"reminders: queued {count}")
