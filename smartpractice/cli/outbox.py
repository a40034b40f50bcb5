"""`smartpractice mail …`: the outbox from the command line."""

from __future__ import annotations

import functools

import click

from smartpractice.cli import _run, _settings, _with_services, main
from smartpractice.clock import Clock
from smartpractice.mail.queue import STATUSES
from smartpractice.mail.sender import MailSender


@main.group()
def mail() -> None:
    """The mail outbox: what waits or failed, a retry, a test mail."""


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@mail.command("list")
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES),
              help="Only mails in this state (repeatable; default: all but sent).")
@click.option("--limit", default=100, show_default=True, help="At most this many, newest first.")
def mail_list(statuses: tuple[str, ...], limit: int) -> None:
    """List mails by id, kind, state, tries and last error (never the recipient)."""
    chosen = statuses or ("pending", "sending", "failed", "uncertain")
    mails = _run(_settings(), lambda services: services.mail_queue.mails(chosen, limit))
    if not mails:
        click.echo("No mails.")
    for item in mails:
        click.echo(f"{item.id}\t{item.kind}\t{item.status}\ttries {item.attempts}\tcreated {_when(item.created_at)}\t"
                   f"next {_when(item.next_attempt_at)}\t{item.last_error or ''}")


@mail.command("retry")
@click.argument("mail_ids", nargs=-1, type=int)
def mail_retry(mail_ids: tuple[int, ...]) -> None:
    """Try pending mails (all, or MAIL_IDS) now instead of after their back-off."""
    count = _run(_settings(), lambda services: services.mail_queue.retry(list(mail_ids) or None))
    click.echo(f"{count} pending mail(s) due now; the server's sender takes them within seconds.")
    click.echo("Failed and uncertain mails are not sent again (their links and codes were blanked): "
               "the person asks for a new one.")


@mail.command("test")
@click.argument("address")
@click.option("--language", type=click.Choice(("de", "en")), default="de", show_default=True)
def mail_test(address: str, language: str) -> None:
    """Send a test mail to ADDRESS now, through the configured SMTP server, and say how it went."""
    settings = _settings()

    async def work(services, engine):
        mail_id = await services.mail_queue.enqueue_test(address, language)
        sender = MailSender(engine=engine, clock=Clock(), settings=settings, wake=services.outbox.wake)
        await sender.send_due()
        return await services.mail_queue.find(mail_id)

    sent = _run(settings, work, on=functools.partial(_with_services, engine_too=True))
    where = f"the SMTP server {settings.smtp_host}:{settings.smtp_port}" if settings.smtp_host else \
        f"the folder {settings.outbox_dir}"
    if sent is not None and sent.status == "sent":
        click.echo(f"Test mail {sent.id} handed to {where}.")
        return
    raise click.ClickException(f"Test mail not sent ({sent.status if sent else 'missing'}): "
                               f"{sent.last_error if sent else ''}; it stays in the queue for the server's sender.")

