"""Delivers the outbox: over SMTP, or into a folder when no SMTP server is configured."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import aiosmtplib
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.clock import Clock
from smartpractice.config import Settings
from smartpractice.errors import busy_database
from smartpractice.storage import mails as store
from smartpractice.storage.engine import read_only
from smartpractice.storage.mails import Mail

log = logging.getLogger(__name__)

BATCH = 20
POLL_SECONDS = 5.0
# The outbox wakes the sender from inside the enqueuing transaction, before it commits;
# a woken sender that finds nothing looks again after these pauses.
WAKE_RECHECKS = (0.05, 0.25, 1.0)
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
# About a day of retries before a mail is given up.
MAX_ATTEMPTS = 30
# Far beyond the SMTP timeout: a mail still "sending" after this was cut off by a crash.
STALE_CLAIM = timedelta(minutes=10)
# How often a running sender looks for such mails: the crashed instance may never start
# again while another runs on, so a look at start alone would leave its mail `sending`.
STALE_LOOK_SECONDS = POLL_SECONDS
SMTP_TIMEOUT = 30
# The mail is recorded as sent before QUIT; a server that does not answer it is left.
GOODBYE_SECONDS = 2
# What a stop keeps of its budget to hand back a mail it cuts off, and to return.
HAND_BACK_SECONDS = 1.0


# A sender picks a due mail up within seconds; one waiting this long means none runs.
OVERDUE = timedelta(minutes=15)


class PermanentFailure(Exception):
    """The server refused the mail for good (5xx); retrying will not help."""


def build_message(mail: Mail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(mail.created_at)
    message["Message-ID"] = mail.message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.text_body)
    message.add_alternative(mail.html_body, subtype="html")
    if mail.calendar:
        method = "CANCEL" if "METHOD:CANCEL" in mail.calendar else "REQUEST"
        message.add_attachment(
            mail.calendar.encode(), maintype="text", subtype="calendar", filename="consultation.ics",
            params={"method": method, "charset": "utf-8"},
        )
    return message


class SmtpTransport:
    """One connection per mail. `deliver` returns once the server has answered the data with
    250 and leaves the goodbye (QUIT) to `goodbye`, so that the sender records the mail as
    sent first: a server slow to say goodbye must not leave an accepted mail unrecorded."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: aiosmtplib.SMTP | None = None

    async def deliver(self, message: EmailMessage) -> None:
        settings = self._settings
        client = self._client = aiosmtplib.SMTP(
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username or None,
            password=settings.smtp_password or None,
            use_tls=settings.smtp_tls == "tls",
            start_tls=settings.smtp_tls == "starttls",
            timeout=SMTP_TIMEOUT,
        )
        try:
            await client.connect()
            await client.send_message(message)
        except aiosmtplib.SMTPResponseException as error:
            client.close()
            if error.code >= 500:
                raise PermanentFailure(f"{error.code} {error.message}") from error
            raise
        except BaseException:
            # Cut by the stop, too: closing without the server's 250 aborts the transaction
            # (RFC 5321 4.1.1.4), so the server has not taken the mail.
            client.close()
            raise

    async def goodbye(self) -> None:
        client, self._client = self._client, None
        if client is None or not client.is_connected:
            return
        try:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                async with asyncio.timeout(GOODBYE_SECONDS):
                    await client.quit()
        finally:
            client.close()


class FolderTransport:
    """For the embedded setup: each mail becomes a .eml file a developer can open."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    async def deliver(self, message: EmailMessage) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        name = message["Message-ID"].strip("<>").split("@")[0] + ".eml"
        await asyncio.to_thread((self._folder / name).write_bytes, bytes(message))
        log.info("Mail written to %s", self._folder / name)

    async def goodbye(self) -> None:
        pass


class MailSender:
    def __init__(self, *, engine: AsyncEngine, clock: Clock, settings: Settings, wake: asyncio.Event) -> None:
        self._engine = engine
        self._reads = read_only(engine)
        self._clock = clock
        self._sender = settings.mail_from
        self._wake = wake
        self._stop = asyncio.Event()
        # For wait_idle: rounds begun, the last of them that found no mail due.
        self._rounds_begun = 0
        self._last_idle_round = 0
        self._round_ended = asyncio.Condition()
        self._transport: SmtpTransport | FolderTransport = (
            SmtpTransport(settings) if settings.smtp_host else FolderTransport(settings.outbox_dir))
        self._task: asyncio.Task[None] | None = None
        # The SMTP conversation of the mail in hand, until the server has taken the mail.
        self._delivery: asyncio.Future[None] | None = None
        self._cut = False

    def start(self) -> None:
        """Send in a background task of the server until `finish`."""
        self._task = asyncio.create_task(self.run(), name="mail sender")

    async def finish(self, within: float) -> None:
        """The server stops: the mail in hand goes out if the SMTP server takes it in time;
        if not, the conversation is cut and the mail handed back (`pending`, due at once) for
        the next sender, here after a restart or on another instance.

        At least once, for a cut mail, as SMTP itself is: the server takes responsibility
        only with its 250 to the data (RFC 5321 6.1) and closing before it aborts the
        transaction, so a mail without that answer is not the server's and is tried again, as
        after a timeout. A 250 that did arrive is recorded before the goodbye (QUIT), so a
        stop never resends a taken mail; the one window left is a 250 already on its way as
        the cut comes (RFC 1047), and the Message-ID, the same on every try, shows a repeat.
        A crash between the 250 and that record stays at most once (release_stale marks it
        `uncertain`): unknown there, and a second TAN or reset link must not go out unasked."""
        self.stop()
        if self._task is None:
            return
        done, _ = await asyncio.wait({self._task}, timeout=max(0.0, within - HAND_BACK_SECONDS))
        if not done:
            self._cut = True
            if self._delivery is not None:
                self._delivery.cancel()
            # The last resort: a database that does not answer the hand-back in time.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, HAND_BACK_SECONDS)

    async def run(self) -> None:
        """Send until `stop`; the server's background task (`start`), or a test's."""
        next_stale_look = 0.0
        pauses: tuple[float, ...] = ()
        while not self._stop.is_set():
            self._wake.clear()
            self._rounds_begun += 1
            this_round = self._rounds_begun
            try:
                # In the loop, so a database busy at start (SQLite locked) is tried again.
                if time.monotonic() >= next_stale_look:
                    await self.release_stale()
                    next_stale_look = time.monotonic() + STALE_LOOK_SECONDS
                found, sent = await self._send_due()
            except Exception as error:
                if busy_database(error) is None:
                    log.exception("mail sender round failed; trying again")
                else:  # a crowd holds the database: expected, and the next round tries again
                    log.warning("mail sender round found the database busy; trying again")
                found, sent = None, 0
            if found == 0:
                self._last_idle_round = this_round
            async with self._round_ended:
                self._round_ended.notify_all()
            if pauses and not sent:
                woken = await self._pause(self._wake, pauses[0])
                pauses = WAKE_RECHECKS if woken else pauses[1:]
                continue
            woken = await self._pause(self._wake, POLL_SECONDS)
            pauses = WAKE_RECHECKS if woken else ()

    async def wait_idle(self) -> None:
        """Return once a round that began after this call found no mail due: every mail
        committed before the call has been sent or has had its try. Lets tests assert
        that nothing was sent without sleeping; the sender must be running."""
        called_at = self._rounds_begun
        async with self._round_ended:
            while self._last_idle_round <= called_at:
                self._wake.set()
                await self._round_ended.wait()

    def stop(self) -> None:
        """Finish the mail in hand, then return from `run`: a cancel in the middle of a
        transaction could leave a claimed row or an open SQLite write lock behind."""
        self._stop.set()
        self._wake.set()

    @staticmethod
    async def _pause(event: asyncio.Event, seconds: float) -> bool:
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def moving(self) -> bool:
        """False when a mail has been due for longer than OVERDUE: no sender is at work
        (with SMTP down, retries are scheduled ahead and do not count), or when the
        database stopped answering meanwhile."""
        try:
            async with self._reads.connect() as conn:
                return await store.overdue_count(conn, self._clock.now() - OVERDUE) == 0
        except (OSError, DBAPIError):
            return False

    async def queue(self) -> dict[str, int]:
        """How many mails the outbox holds, by status."""
        async with self._reads.connect() as conn:
            return await store.status_counts(conn)

    async def release_stale(self) -> int:
        """Mails claimed longer than STALE_CLAIM ago by a sender that crashed: `uncertain`
        (finish says why). Every STALE_LOOK_SECONDS, by each running sender: a read, and a
        write only when there is one (on SQLite a write takes the database's one lock)."""
        claimed_before = self._clock.now() - STALE_CLAIM
        async with self._reads.connect() as conn:
            if not await store.stale_claims(conn, claimed_before):
                return 0
        async with self._engine.begin() as conn:
            count = await store.mark_stale_uncertain(conn, claimed_before)
        if count:
            log.warning("%d mail(s) were cut off mid-send and are marked uncertain, not resent", count)
        return count

    async def send_due(self) -> int:
        """Send what is due now; returns how many went out."""
        return (await self._send_due())[1]

    async def _send_due(self) -> tuple[int, int]:
        """How many mails were due, and how many of them went out."""
        async with self._reads.connect() as conn:
            ids = await store.due_ids(conn, self._clock.now(), BATCH)
        sent = 0
        for mail_id in ids:
            if self._stop.is_set():
                break
            async with self._engine.begin() as conn:
                mail = await store.claim(conn, mail_id, self._clock.now())
            if mail is not None:
                sent += await self._send_one(mail)
        return len(ids), sent

    async def _send_one(self, mail: Mail) -> int:
        delivery = self._delivery = asyncio.ensure_future(
            self._transport.deliver(build_message(mail, self._sender)))
        if self._cut:  # claimed as the stop's budget ran out
            delivery.cancel()
        try:
            await delivery
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the sender itself is cancelled, not just the delivery
            async with self._engine.begin() as conn:
                await store.hand_back(conn, mail.id, self._clock.now())
            log.warning("mail %d handed back unsent: the instance stopped before the SMTP server took it", mail.id)
            return 0
        # Server answers can quote the recipient's address: they go to the mail's row for
        # the operator, while the log gets only the kind of error.
        except PermanentFailure as error:
            async with self._engine.begin() as conn:
                await store.mark_failed(conn, mail.id, str(error))
            log.error("mail %d refused for good by the SMTP server", mail.id)
            return 0
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            reason = f"{type(error).__name__}: {error}"
            async with self._engine.begin() as conn:
                if mail.attempts >= MAX_ATTEMPTS:
                    await store.mark_failed(conn, mail.id, reason)
                    log.error("mail %d given up after %d attempts", mail.id, mail.attempts)
                else:
                    delay = min(FIRST_RETRY * 2 ** (mail.attempts - 1), LONGEST_RETRY)
                    await store.mark_retry(conn, mail.id, self._clock.now() + delay, reason)
                    log.warning("mail %d not sent (%s); next try in %s", mail.id, type(error).__name__, delay)
            return 0
        finally:
            self._delivery = None
        try:
            async with self._engine.begin() as conn:
                await store.mark_sent(conn, mail.id, self._clock.now())
        finally:
            await self._transport.goodbye()
        return 1
