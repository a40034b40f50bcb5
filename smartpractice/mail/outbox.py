"""The transactional outbox: a mail is a row written in the transaction of its cause.

If that transaction rolls back, the mail never existed; if it commits, the sender will
deliver it even when SMTP is down for a while or the server restarts meanwhile.
"""

from __future__ import annotations

import asyncio
import secrets

from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.clock import Clock
from smartpractice.mail.compose import MailComposer
from smartpractice.storage import mails as store


class Outbox:
    def __init__(self, *, composer: MailComposer, clock: Clock, domain: str) -> None:
        self._composer = composer
        self._clock = clock
        self._domain = domain
        self.wake = asyncio.Event()

    async def enqueue(
        self, conn: AsyncConnection, *, kind: str, to: str, language: str, context: dict, calendar: str | None = None
    ) -> int:
        composed = self._composer.compose(kind, language, context)
        mail_id = await store.insert_mail(
            conn,
            kind=kind,
            recipient=to,
            subject=composed.subject,
            text_body=composed.text,
            html_body=composed.html,
            # Stable across retries, so a receiving system can recognise a repeat.
            message_id=f"<{secrets.token_hex(16)}@{self._domain}>",
            now=self._clock.now(),
            calendar=calendar,
        )
        # The row is visible only after the caller commits; the sender allows for that by
        # looking again shortly (sender.WAKE_RECHECKS). A rollback leaves nothing to find.
        self.wake.set()
        return mail_id
