"""`smartpractice user …`: the operator's help for a person who is locked out or wants to go."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import click

from smartpractice.accounts.personal_data import as_json
from smartpractice.cli import _practice, _run, _settings, main


@main.group()
def user() -> None:
    """Accounts: a new password, a reset second factor, an unlock, a deletion."""


@user.command("reset-password")
@click.argument("login")
def reset_password(login: str) -> None:
    """Give LOGIN (user name or email) a new initial password; ends their sessions."""
    found, password = _run(_settings(), lambda services: services.administration.reset_password(login))
    click.echo(f"New initial password for {found.username}: {password}")
    click.echo("They choose their own at the next login; every session of theirs has ended.")


@user.command("reset-second-factor")
@click.argument("login")
def reset_second_factor(login: str) -> None:
    """Remove LOGIN's authenticator app and recovery codes; they set up a new app at the next login."""
    found, removed = _run(_settings(), lambda services: services.administration.reset_second_factor(login))
    if removed:
        click.echo(f"Second factor of {found.username} removed; they set up a new app at the next login.")
    else:
        click.echo(f"{found.username} had no second factor; nothing removed.")


@user.command("unlock")
@click.argument("login")
def unlock(login: str) -> None:
    """Lift the lock that failed logins put on LOGIN's account."""
    found = _run(_settings(), lambda services: services.administration.unlock(login))
    click.echo(f"{found.username} can log in again (failed logins forgotten).")


@user.command("delete")
@click.argument("login")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(login: str, yes: bool) -> None:
    """Delete LOGIN's account and everything about them (docs/privacy-operations.md)."""
    if not yes:
        click.confirm(f"Delete the account {login} and all data about it? This cannot be undone", abort=True)
    found = _run(_settings(), lambda services: services.administration.delete(login))
    click.echo(f"Account {found.username} deleted.")


@main.group()
def practice() -> None:
    """Practices as a whole (suspending is on the operator's page)."""


@practice.command("delete")
@click.argument("slug")
@click.option("--notice-days", default=30, show_default=True,
              help="Days the practice must have been suspended (the notice period of your terms).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def practice_delete(slug: str, notice_days: int, yes: bool) -> None:
    """Delete a suspended practice, everything it held, and the accounts of people who
    belonged only to it (docs/privacy-operations.md)."""
    if not yes:
        click.confirm(f"Delete the practice {slug} and all its data? This cannot be undone", abort=True)

    async def work(services):
        found = await _practice(services, slug)
        return await services.personal_data.delete_practice(found, notice=timedelta(days=notice_days))

    accounts = _run(_settings(), work)
    click.echo(f"Practice {slug} deleted, with {accounts} account(s) that belonged only to it.")


@practice.command("export")
@click.argument("slug")
@click.option("--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write the JSON to this file instead of standard output.")
def practice_export(slug: str, output: Path | None) -> None:
    """Everything the service holds for a practice, as JSON, without secrets (as its admin
    downloads it on the settings page; docs/privacy-operations.md)."""

    async def work(services):
        return await services.practice_export.export(await _practice(services, slug), actor=None)

    text = as_json(_run(_settings(), work)) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    # It holds patients' names and addresses: readable by the operator alone, as a backup would be.
    # The mode of open() holds only for a new file: one that was there is narrowed first.
    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    click.echo(f"Data of the practice {slug} written to {output}.", err=True)
