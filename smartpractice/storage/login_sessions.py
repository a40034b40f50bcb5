"""Server-side login sessions, found by the hash of their cookie value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.practices import Membership, practice_from
from smartpractice.storage.rows import new_id
from smartpractice.storage.tables import login_sessions, memberships, practices, users
from smartpractice.storage.users import User, user_from

# Every logged-in page asks this first, so it is one statement, built once: the session,
# its user and where they belong (a row per active membership).
_SESSION_WITH_USER = (
    select(
        login_sessions,
        *(column.label(f"user__{column.name}") for column in users.c),
        *(column.label(f"practice__{column.name}") for column in practices.c),
        memberships.c.role.label("membership_role"),
        memberships.c.treats_patients.label("membership_treats_patients"),
    )
    .outerjoin(users, users.c.id == login_sessions.c.user_id)
    .outerjoin(memberships, and_(memberships.c.user_id == users.c.id, memberships.c.deactivated_at.is_(None)))
    .outerjoin(practices, practices.c.id == memberships.c.practice_id)
    .where(login_sessions.c.token_hash == bindparam("token_hash"))
    .order_by(practices.c.name)
)


@dataclass(frozen=True)
class LoginSession:
    id: int
    user_id: int | None
    invitation_id: int | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    user_agent: str
    needs_second_factor: bool = False


def _session(row) -> LoginSession:
    return LoginSession(
        id=row.id,
        user_id=row.user_id,
        invitation_id=row.invitation_id,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
        user_agent=row.user_agent,
        needs_second_factor=row.needs_second_factor,
    )


async def insert_session(
    conn: AsyncConnection,
    *,
    token_hash: str,
    user_id: int | None,
    invitation_id: int | None = None,
    now: datetime,
    expires_at: datetime,
    user_agent: str,
    needs_second_factor: bool = False,
) -> int:
    result = await conn.execute(
        insert(login_sessions).values(
            token_hash=token_hash,
            user_id=user_id,
            invitation_id=invitation_id,
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
            user_agent=user_agent,
            needs_second_factor=needs_second_factor,
        )
    )
    return new_id(result)


async def session_by_hash(conn: AsyncConnection, token_hash: str) -> LoginSession | None:
    query = select(login_sessions).where(login_sessions.c.token_hash == token_hash)
    row = (await conn.execute(query)).first()
    return None if row is None else _session(row)


@dataclass(frozen=True)
class SessionOwner:
    """Who a session belongs to: a user and their active memberships; None for a guest."""

    user: User
    memberships: tuple[Membership, ...]


async def session_with_owner(conn: AsyncConnection, token_hash: str) -> tuple[LoginSession, SessionOwner | None] | None:
    return _with_owner((await conn.execute(_SESSION_WITH_USER, {"token_hash": token_hash})).all())


def session_with_owner_now(conn: Connection, token_hash: str) -> tuple[LoginSession, SessionOwner | None] | None:
    """The same on a synchronous connection (engine.create_loop_reader)."""
    return _with_owner(conn.execute(_SESSION_WITH_USER, {"token_hash": token_hash}).all())


def _with_owner(rows) -> tuple[LoginSession, SessionOwner | None] | None:
    if not rows:
        return None
    first = rows[0]
    if first.user__id is None:
        return _session(first), None
    owned = tuple(
        Membership(practice_from(row._mapping, "practice__"), row.membership_role, row.membership_treats_patients)
        for row in rows if row.membership_role is not None
    )
    return _session(first), SessionOwner(user_from(first._mapping, "user__"), owned)


async def sessions_of(conn: AsyncConnection, user_id: int) -> list[LoginSession]:
    query = (
        select(login_sessions)
        .where(login_sessions.c.user_id == user_id)
        .order_by(login_sessions.c.last_seen_at.desc())
    )
    return [_session(row) for row in await conn.execute(query)]


async def touch(conn: AsyncConnection, session_id: int, now: datetime) -> None:
    await conn.execute(
        update(login_sessions).where(login_sessions.c.id == session_id).values(last_seen_at=now)
    )


async def delete_session(conn: AsyncConnection, session_id: int) -> None:
    await conn.execute(delete(login_sessions).where(login_sessions.c.id == session_id))


async def delete_session_of(conn: AsyncConnection, user_id: int, session_id: int) -> bool:
    """End one of the user's own sessions; False if it is not theirs (or gone)."""
    statement = delete(login_sessions).where(login_sessions.c.id == session_id, login_sessions.c.user_id == user_id)
    return (await conn.execute(statement)).rowcount == 1


async def delete_sessions_of_invitation(conn: AsyncConnection, invitation_id: int) -> int:
    statement = delete(login_sessions).where(login_sessions.c.invitation_id == invitation_id)
    return (await conn.execute(statement)).rowcount


async def delete_sessions_of(
    conn: AsyncConnection, user_id: int, *, keep: int | None = None
) -> int:
    statement = delete(login_sessions).where(login_sessions.c.user_id == user_id)
    if keep is not None:
        statement = statement.where(login_sessions.c.id != keep)
    return (await conn.execute(statement)).rowcount
