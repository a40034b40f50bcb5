"""Rows written straight into the tables, for the purge and jobs tests."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.tables import (
    attendances,
    audit_log,
    calls,
    consultations,
    form_submissions,
    invitations,
    link_tokens,
    login_sessions,
    mails,
    offer_requests,
    participants,
    practices,
    reminders,
    throttles,
)


async def _insert(conn: AsyncConnection, table, **values) -> int:
    return (await conn.execute(insert(table).values(**values))).inserted_primary_key[0]


async def practice(conn: AsyncConnection, now: datetime) -> int:
    return await _insert(conn, practices, slug=f"praxis-{secrets.token_hex(4)}", name="Praxis", created_at=now)


async def consultation(
    conn: AsyncConnection, practice_id: int, *, starts_at: datetime, minutes: int = 30, state: str = "ended"
) -> int:
    return await _insert(
        conn, consultations, practice_id=practice_id, title="Sprechstunde", starts_at=starts_at,
        duration_minutes=minutes, state=state, uid=secrets.token_hex(8) + "@test",
        created_at=starts_at, updated_at=starts_at,
    )


async def call(conn: AsyncConnection, consultation_id: int, *, started_at: datetime, attending: int = 2) -> int:
    practice_id = (
        await conn.execute(select(consultations.c.practice_id).where(consultations.c.id == consultation_id))
    ).scalar_one()
    call_id = await _insert(
        conn, calls, practice_id=practice_id, consultation_id=consultation_id,
        started_at=started_at, ended_at=started_at + timedelta(minutes=20),
    )
    for number in range(attending):
        await _insert(
            conn, attendances, call_id=call_id, role="clinician" if number == 0 else "patient",
            client_kind="desktop", joined_at=started_at, left_at=started_at + timedelta(minutes=20),
        )
    return call_id


async def invitation(
    conn: AsyncConnection, practice_id: int, *, expires_at: datetime, consultation_id: int | None = None
) -> int:
    return await _insert(
        conn, invitations, practice_id=practice_id, email="gast@example.org", display_name="Gast",
        language="de", link_hash=secrets.token_hex(32), tan_hmac=secrets.token_hex(32),
        created_at=expires_at - timedelta(hours=24), expires_at=expires_at, consultation_id=consultation_id,
    )


async def participant_with_reminder(conn: AsyncConnection, consultation_id: int, invitation_id: int) -> int:
    participant_id = await _insert(
        conn, participants, consultation_id=consultation_id, invitation_id=invitation_id,
        created_at=datetime.now().astimezone(),
    )
    await _insert(conn, reminders, participant_id=participant_id, lead_minutes=60, sent_at=datetime.now().astimezone())
    return participant_id


async def login_session(conn: AsyncConnection, *, last_seen_at: datetime, expires_at: datetime) -> int:
    return await _insert(
        conn, login_sessions, token_hash=secrets.token_hex(32), created_at=last_seen_at,
        last_seen_at=last_seen_at, expires_at=expires_at,
    )


async def link_token(conn: AsyncConnection, user_id: int, *, expires_at: datetime, used_at: datetime | None = None) -> int:
    return await _insert(
        conn, link_tokens, purpose="confirm", token_hash=secrets.token_hex(32), user_id=user_id,
        created_at=expires_at - timedelta(days=1), expires_at=expires_at, used_at=used_at,
    )


async def throttle(conn: AsyncConnection, *, window_started_at: datetime, locked_until: datetime | None = None) -> str:
    key = f"address:{secrets.token_hex(8)}"
    await conn.execute(
        insert(throttles).values(key=key, failures=3, window_started_at=window_started_at, locked_until=locked_until)
    )
    return key


async def mail(conn: AsyncConnection, *, created_at: datetime, status: str = "sent") -> int:
    return await _insert(
        conn, mails, kind="password_reset", recipient="erika@example.org", subject="Betreff",
        text_body="", html_body="", message_id=f"<{secrets.token_hex(8)}@localhost>", status=status,
        next_attempt_at=created_at, created_at=created_at, sent_at=created_at,
    )


async def ids(conn: AsyncConnection, table) -> set:
    key = next(iter(table.primary_key.columns))
    return set((await conn.execute(select(key))).scalars())


async def audit_entry(conn: AsyncConnection, practice_id: int | None, *, created_at: datetime) -> int:
    return await _insert(conn, audit_log, practice_id=practice_id, action="login", object_kind="user",
                         object_id="1", created_at=created_at)


async def offer_request(conn: AsyncConnection, *, created_at: datetime) -> int:
    return await _insert(conn, offer_requests, name="Dr. A", practice_name="Praxis A", email="a@example.org",
                         phone="", message="", created_at=created_at)


async def form_token(conn: AsyncConnection, *, created_at: datetime) -> str:
    key = secrets.token_hex(32)
    await conn.execute(insert(form_submissions).values(key=key, created_at=created_at, object_kind="consultation",
                                                       object_id=1))
    return key
