"""The outbox as the operator sees it from the command line: what waits, what failed,
and a retry at once of what waits out its back-off (docs/operations.md)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.mail.outbox import Outbox
from smartpractice.storage import mails as store
from smartpractice.storage.mails import QueuedMail

STATUSES = ("pending", "sending", "sent", "failed", "uncertain")


class MailQueue:
    def __init__(self, *, engine: AsyncEngine, clock: Clock, audit: Audit, outbox: Outbox) -> None:
        self._engine = engine
        self._clock = clock
        self._audit = audit
        self._outbox = outbox

    async def enqueue_test(self, address: str, language: str) -> int:
        """A mail that says only that mail works, for `smartpractice mail test`."""
        async with self._engine.begin() as conn:
            mail_id = await self._outbox.enqueue(conn, kind="test", to=address, language=language, context={})
            await self._audit.record(conn, None, None, "test_mail_sent", "mail", mail_id)
        return mail_id

    async def find(self, mail_id: int) -> QueuedMail | None:
        found = await self.mails(STATUSES, limit=None, mail_id=mail_id)
        return found[0] if found else None

    async def mails(self, statuses: tuple[str, ...] = ("pending", "sending", "failed", "uncertain"),
                   limit: int | None = 100, mail_id: int | None = None) -> list[QueuedMail]:
        async with self._engine.connect() as conn:
            return await store.listing(conn, statuses, limit, mail_id)

    async def retry(self, mail_ids: list[int] | None) -> int:
        """Pending mails (all, or these) due now. Failed and uncertain mails are not sent
        again: their bodies, with links and codes, were blanked, and a second TAN or link
        must not go out unasked; the person asks for a new one."""
        async with self._engine.begin() as conn:
            count = await store.due_now(conn, mail_ids, self._clock.now())
            await self._audit.record(conn, None, None, "mail_retried", "mail", count)
        return count
