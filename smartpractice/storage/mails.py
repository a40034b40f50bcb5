"""The mail outbox table: rows written with the change that causes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, insert, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.rows import new_id
from smartpractice.storage.tables import mails


@dataclass(frozen=True)
class Mail:
    id: int
    kind: str
    recipient: str
    subject: str
    text_body: str
    html_body: str
    message_id: str
    attempts: int
    created_at: datetime
    calendar: str | None = None


async def insert_mail(
    conn: AsyncConnection,
    *,
    kind: str,
    recipient: str,
    subject: str,
    text_body: str,
    html_body: str,
    message_id: str,
    now: datetime,
    calendar: str | None = None,
) -> int:
    result = await conn.execute(
        insert(mails).values(
            kind=kind,
            recipient=recipient,
            subject=subject,
            text_body=text_body,
            html_body=html_body,
            message_id=message_id,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            calendar=calendar,
        )
    )
    return new_id(result)


async def due_ids(conn: AsyncConnection, now: datetime, limit: int) -> list[int]:
    query = (
        select(mails.c.id)
        .where(mails.c.status == "pending", mails.c.next_attempt_at <= now)
        # Ties (mails written in the same instant) go in the order they were written.
        .order_by(mails.c.next_attempt_at, mails.c.id)
        .limit(limit)
    )
    return list((await conn.execute(query)).scalars())


async def claim(conn: AsyncConnection, mail_id: int, now: datetime) -> Mail | None:
    """Mark one pending mail as being sent; None if another sender was quicker."""
    claimed = await conn.execute(
        update(mails)
        .where(mails.c.id == mail_id, mails.c.status == "pending")
        .values(status="sending", claimed_at=now, attempts=mails.c.attempts + 1)
    )
    if claimed.rowcount != 1:
        return None
    row = (await conn.execute(select(mails).where(mails.c.id == mail_id))).one()
    return Mail(
        id=row.id,
        kind=row.kind,
        recipient=row.recipient,
        subject=row.subject,
        text_body=row.text_body,
        html_body=row.html_body,
        message_id=row.message_id,
        attempts=row.attempts,
        created_at=row.created_at,
        calendar=row.calendar,
    )


async def mark_sent(conn: AsyncConnection, mail_id: int, now: datetime) -> None:
    await conn.execute(
        update(mails)
        .where(mails.c.id == mail_id)
        .values(status="sent", sent_at=now, text_body="", html_body="", calendar=None, last_error=None)
    )


async def mark_retry(conn: AsyncConnection, mail_id: int, at: datetime, error: str) -> None:
    await conn.execute(
        update(mails)
        .where(mails.c.id == mail_id)
        .values(status="pending", next_attempt_at=at, claimed_at=None, last_error=error[:300])
    )


async def hand_back(conn: AsyncConnection, mail_id: int, now: datetime) -> None:
    """A stopping sender cut the mail off before the server took it: due again at once, and
    the try not counted, as the server never saw a whole mail."""
    await conn.execute(
        update(mails)
        .where(mails.c.id == mail_id, mails.c.status == "sending")
        .values(status="pending", next_attempt_at=now, claimed_at=None, attempts=mails.c.attempts - 1)
    )


async def mark_failed(conn: AsyncConnection, mail_id: int, error: str) -> None:
    await conn.execute(
        update(mails)
        .where(mails.c.id == mail_id)
        .values(status="failed", text_body="", html_body="", calendar=None, last_error=error[:300])
    )


async def stale_claims(conn: AsyncConnection, claimed_before: datetime) -> bool:
    """Whether a mail is left `sending` since before `claimed_before` (a crashed sender's)."""
    query = select(mails.c.id).where(mails.c.status == "sending", mails.c.claimed_at < claimed_before).limit(1)
    return (await conn.execute(query)).first() is not None


async def mark_stale_uncertain(conn: AsyncConnection, claimed_before: datetime) -> int:
    """Mails whose sender stopped mid-send: they may have gone out, so they are not resent."""
    result = await conn.execute(
        update(mails)
        .where(and_(mails.c.status == "sending", mails.c.claimed_at < claimed_before))
        .values(status="uncertain", text_body="", html_body="", calendar=None)
    )
    return result.rowcount


async def status_counts(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(select(mails.c.status, func.count()).group_by(mails.c.status))
    return {status: count for status, count in rows}


async def overdue_count(conn: AsyncConnection, due_before: datetime) -> int:
    query = select(func.count()).select_from(mails).where(
        mails.c.status == "pending", mails.c.next_attempt_at < due_before)
    return (await conn.execute(query)).scalar_one()


@dataclass(frozen=True)
class QueuedMail:
    id: int
    kind: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None


async def listing(conn: AsyncConnection, statuses: tuple[str, ...], limit: int | None,
                  mail_id: int | None = None) -> list[QueuedMail]:
    query = (select(mails.c.id, mails.c.kind, mails.c.status, mails.c.attempts, mails.c.created_at,
                    mails.c.next_attempt_at, mails.c.last_error)
             .where(mails.c.status.in_(statuses), mails.c.id == mail_id if mail_id is not None else true())
             .order_by(mails.c.id.desc()).limit(limit))
    return [QueuedMail(**row._mapping) for row in await conn.execute(query)]


async def due_now(conn: AsyncConnection, mail_ids: list[int] | None, now: datetime) -> int:
    """Pending mails waiting out their back-off are tried at once (SMTP works again)."""
    condition = mails.c.status == "pending"
    if mail_ids is not None:
        condition = and_(condition, mails.c.id.in_(mail_ids))
    return (await conn.execute(update(mails).where(condition).values(next_attempt_at=now))).rowcount
