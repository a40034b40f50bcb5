"""The `smartpractice` command."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys

import click
from aiohttp import web
from sqlalchemy.exc import DBAPIError

from smartpractice import logs
from smartpractice.app import create_app, prepare_database
from smartpractice.clock import Clock
from smartpractice.config import ConfigError, Settings
from smartpractice.errors import UserError
from smartpractice.jobs.retention import purge_expired
from smartpractice.keys import catalogs_key, secret_key
from smartpractice.rooms.memory_lease import RoomsHeldElsewhere
from smartpractice.services import build_services
from smartpractice.storage.engine import SchemaOutOfDate, create_engine, upgrade
from smartpractice.web.links import RouterLinks

BASE_URL_ENV = "SMARTPRACTICE_BASE_URL"
DEMO_PRACTICE = "Praxis Demo"
DEMO_ADMIN = "demo-admin"

log = logging.getLogger("smartpractice")


def _settings(**overrides: str) -> Settings:
    try:
        return Settings.from_env(None, **overrides)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


async def _with_engine(settings: Settings, work):
    """Run `work` with a database engine, outside a running server."""
    await prepare_database(settings)
    engine = create_engine(settings.database_url)
    try:
        return await work(engine)
    finally:
        await engine.dispose()


async def _with_services(settings: Settings, work, *, engine_too: bool = False):
    """Run `work` with the app's services (and, `engine_too`, the engine for the mail
    sender), outside a running server."""
    app = create_app(settings)

    async def build(engine):
        services = build_services(
            engine=engine, settings=settings, clock=Clock(), secret=app[secret_key], catalogs=app[catalogs_key],
            links=RouterLinks(router=app.router, base_url=settings.base_url),
        )
        return await (work(services, engine) if engine_too else work(services))

    return await _with_engine(settings, build)


def _run(settings: Settings, work, *, on=_with_services):
    """Run `work` on the services (or, with `on=_with_engine`, on the engine) and turn
    the errors a user can act on into messages."""
    try:
        return asyncio.run(on(settings, work))
    except SchemaOutOfDate as error:
        raise click.ClickException(str(error)) from None
    except UserError as error:
        raise click.ClickException(error.text()) from None
    except (OSError, DBAPIError) as error:
        raise click.ClickException(f"The database cannot be reached: {error}") from None


@click.group()
def main() -> None:
    """smartpractice: video consultations for medical practices."""


@main.command()
@click.option("--host", help="Address to listen on (default: SMARTPRACTICE_HOST).")
@click.option("--port", type=int, help="Port to listen on (default: SMARTPRACTICE_PORT).")
@click.option("--demo", is_flag=True, help="Create a demo practice if missing and print its admin login.")
def serve(host: str | None, port: int | None, demo: bool) -> None:
    """Run the web server."""
    # Links and the Origin check follow --port unless a public URL is configured.
    local = {} if port is None or BASE_URL_ENV in os.environ else {"BASE_URL": f"http://localhost:{port}"}
    settings = _settings(**local)
    logs.configure(settings.log_level, settings.log_format)
    # A public service must name who runs it (Impressum, § 5 DDG; GDPR art. 13); a demo
    # on one's own machine need not.
    missing = settings.missing_operator_details()
    if missing and not demo:
        raise click.ClickException(
            f"Refusing to start: the Impressum and the privacy page need {', '.join(missing)} "
            "(who runs this service, their postal address, an email address and phone number; "
            "docs/configuration.md). Set them, or try the service with `smartpractice serve --demo`."
        )
    if demo:
        username, password = _run(settings, _ensure_demo)
        click.echo(f"Demo practice: {DEMO_PRACTICE}")
        click.echo(f"Log in at {settings.base_url}/login as {username} with password {password}")
    if not settings.smtp_host:
        log.info("No SMTP server configured; mails are written to %s", settings.outbox_dir.resolve())
    app = create_app(settings, sole_instance=True)
    app.on_startup.append(_freeze_what_lasts)
    try:
        web.run_app(
            app,
            host=host or settings.host,
            port=port or settings.port,
            access_log_class=logs.AccessLogger,
            # A client that leaves stops its request: a queued password hash is dropped, a
            # transaction rolled back (as in the tests, which aiohttp's test server runs so).
            handler_cancellation=True,
            # Requests in hand when SIGTERM comes get the stop's budget but two seconds, which
            # the mail sender and the jobs get (draining.py: at least one each).
            shutdown_timeout=max(1, settings.stop_seconds - 2),
            print=lambda text: log.info(text.strip()),
        )
    except (SchemaOutOfDate, RoomsHeldElsewhere) as error:
        raise click.ClickException(str(error)) from None
    except (OSError, DBAPIError) as error:
        raise click.ClickException(f"The database cannot be reached: {error}") from None


async def _freeze_what_lasts(app) -> None:
    """Once everything the server keeps is built (modules, routes, templates, engine), take
    it out of the garbage collector's sight: a full collection would otherwise walk all of
    it again and again, half a second each time under load (benchmarks/pages.py)."""
    gc.collect()
    gc.freeze()


async def _ensure_demo(services) -> tuple[str, str]:
    admin = await services.users.by_login(DEMO_ADMIN)
    if admin is None:
        # One person tries everything: the admin also treats patients (plans consultations,
        # has a waiting room), as a founder of a one-doctor practice says at sign-up.
        created = await services.practices.create(
            DEMO_PRACTICE, admin_email="demo-admin@example.org", admin_username=DEMO_ADMIN,
            admin_name="Demo Admin", admin_treats_patients=True,
        )
        return created.admin_username, created.admin_password
    # The first password was printed once and is stored only as a hash: issue a new one.
    return DEMO_ADMIN, await services.users.issue_initial_password(admin.id)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema up to date."""
    settings = _settings()
    try:
        asyncio.run(upgrade(settings.database_url))
    except (OSError, DBAPIError) as error:
        raise click.ClickException(f"The database cannot be reached: {error}") from None
    click.echo("Database schema is up to date.")


@main.command("create-practice")
@click.argument("name")
@click.option("--admin-email", required=True, help="Email address of the practice's first admin.")
@click.option("--admin-username", required=True, help="User name of the practice's first admin.")
@click.option("--admin-name", help="Display name of the admin (default: the user name).")
@click.option("--admin-treats-patients", is_flag=True,
              help="The admin also treats patients: holds consultations and takes a seat.")
def create_practice(
    name: str, admin_email: str, admin_username: str, admin_name: str | None, admin_treats_patients: bool
) -> None:
    """Create a practice and its first admin; prints the admin's initial password."""

    async def work(services):
        return await services.practices.create(
            name, admin_email=admin_email, admin_username=admin_username, admin_name=admin_name,
            admin_treats_patients=admin_treats_patients,
        )

    created = _run(_settings(), work)
    click.echo(f"Practice: {created.practice.name} ({created.practice.slug})")
    click.echo(f"Admin: {created.admin_username}")
    click.echo(f"Initial password: {created.admin_password}")
    click.echo("The admin must choose a new password at first login.")


@main.command("create-operator")
@click.option("--email", required=True, help="Email address of the operator.")
@click.option("--username", required=True, help="User name of the operator.")
@click.option("--name", help="Display name (default: the user name).")
def create_operator(email: str, username: str, name: str | None) -> None:
    """Create a site-wide operator account; prints its initial password."""

    async def work(services):
        return await services.operator.create(email=email, username=username, name=name)

    created = _run(_settings(), work)
    click.echo(f"Operator: {created.username}")
    click.echo(f"Initial password: {created.password}")
    click.echo("At first login the operator chooses a new password and sets up an authenticator app.")


@main.command()
@click.option("--dry-run", is_flag=True, help="Count what would be deleted, delete nothing.")
def purge(dry_run: bool) -> None:
    """Delete what has passed its retention period or expired."""
    settings = _settings()

    async def work(engine):
        return await purge_expired(engine, settings, Clock(), dry_run=dry_run)

    counts = _run(settings, work, on=_with_engine)
    verb = "would delete" if dry_run else "deleted"
    for kind, count in counts.items():
        click.echo(f"{kind}: {verb} {count}")


@main.group("api-key")
def api_key() -> None:
    """API keys that let practice software use the JSON API (/api/v1)."""


async def _practice(services, slug: str):
    practice = await services.practices.by_slug(slug)
    if practice is None:
        raise click.ClickException(f"There is no practice {slug!r}.")
    return practice


@api_key.command("create")
@click.option("--practice", "slug", required=True, help="Slug of the practice the key acts for.")
@click.option("--name", default="practice software", show_default=True, help="What the key is for, shown in `api-key list`.")
def api_key_create(slug: str, name: str) -> None:
    """Create an API key and print it, once."""

    async def work(services):
        return await services.api_keys.create(await _practice(services, slug), name)

    created = _run(_settings(), work)
    # Only the key goes to stdout, so that a script can capture it alone.
    click.echo(f"API key {created.key_id} for {slug}:", err=True)
    click.echo(created.key)
    click.echo("Store it now: it is kept only as a hash and will not be shown again.", err=True)


@api_key.command("list")
@click.option("--practice", "slug", required=True, help="Slug of the practice.")
def api_key_list(slug: str) -> None:
    """List a practice's API keys (their public prefixes, never the keys)."""

    async def work(services):
        return await services.api_keys.list((await _practice(services, slug)).id)

    def when(moment) -> str:
        return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"

    keys = _run(_settings(), work)
    if not keys:
        click.echo("No API keys.")
    for key in keys:
        state = f"revoked {when(key.revoked_at)}" if key.revoked_at else "active"
        click.echo(
            f"{key.id}\t{key.prefix}…\t{key.name}\tcreated {when(key.created_at)}\t"
            f"last used {when(key.last_used_at)}\t{state}"
        )


@api_key.command("revoke")
@click.option("--practice", "slug", required=True, help="Slug of the practice the key belongs to.")
@click.argument("key_id", type=int)
def api_key_revoke(slug: str, key_id: int) -> None:
    """Revoke an API key; requests with it are refused from now on."""

    async def work(services):
        await services.api_keys.revoke((await _practice(services, slug)).id, key_id)

    _run(_settings(), work)
    click.echo(f"API key {key_id} revoked.")


# Each adds its commands to `main`.
from smartpractice.cli import accounts, operations, outbox, relay  # noqa: E402, F401

if __name__ == "__main__":
    sys.exit(main())
