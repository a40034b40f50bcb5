"""User accounts: identity and password."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.i18n import DEFAULT_LANGUAGE
from smartpractice.storage.rows import new_id
from smartpractice.storage.tables import memberships, users


@dataclass(frozen=True)
class User:
    id: int
    username: str
    email: str
    display_name: str
    password_hash: str | None
    must_change_password: bool
    initial_password_expires_at: datetime | None
    email_confirmed_at: datetime | None
    language: str | None  # None: never chosen
    is_operator: bool = False
    pending_email: str | None = None  # asked for, its link not yet followed

    @property
    def mail_language(self) -> str:
        return self.language or DEFAULT_LANGUAGE


def _user(row) -> User:
    return user_from(row._mapping)


def user_from(values, prefix: str = "") -> User:
    """A User from a row's mapping whose user columns are named `prefix` + column name."""
    return User(**{field: values[prefix + field] for field in _FIELDS})


_FIELDS = tuple(User.__dataclass_fields__)


async def insert_user(
    conn: AsyncConnection,
    *,
    username: str,
    email: str,
    display_name: str,
    password_hash: str | None,
    must_change_password: bool,
    initial_password_expires_at: datetime | None,
    email_confirmed_at: datetime | None,
    language: str | None,
    now: datetime,
) -> int:
    result = await conn.execute(
        insert(users).values(
            username=username,
            username_key=username.casefold(),
            email=email,
            email_key=email.casefold(),
            display_name=display_name,
            password_hash=password_hash,
            password_changed_at=now if password_hash else None,
            must_change_password=must_change_password,
            initial_password_expires_at=initial_password_expires_at,
            email_confirmed_at=email_confirmed_at,
            language=language,
            created_at=now,
        )
    )
    return new_id(result)


async def user_by_id(conn: AsyncConnection, user_id: int) -> User | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return None if row is None else _user(row)


async def user_by_login(conn: AsyncConnection, identifier: str) -> User | None:
    """The user whose username or email address is `identifier`, ignoring case."""
    key = identifier.casefold()
    query = select(users).where(or_(users.c.username_key == key, users.c.email_key == key))
    row = (await conn.execute(query)).first()
    return None if row is None else _user(row)


async def taken(conn: AsyncConnection, *, username: str, email: str) -> set[str]:
    """Which of "username" and "email" already belong to someone."""
    query = select(users.c.username_key, users.c.email_key).where(
        or_(users.c.username_key == username.casefold(), users.c.email_key == email.casefold())
    )
    found: set[str] = set()
    for row in await conn.execute(query):
        if row.username_key == username.casefold():
            found.add("username")
        if row.email_key == email.casefold():
            found.add("email")
    return found


async def set_password(
    conn: AsyncConnection,
    user_id: int,
    password_hash: str,
    *,
    now: datetime,
    initial_expires_at: datetime | None = None,
) -> None:
    """Store a chosen password, or with `initial_expires_at` an initial one to be replaced."""
    await conn.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(
            password_hash=password_hash,
            password_changed_at=now,
            must_change_password=initial_expires_at is not None,
            initial_password_expires_at=initial_expires_at,
        )
    )


async def replace_hash(conn: AsyncConnection, user_id: int, old_hash: str, new_hash: str) -> None:
    """Store a rehash unless the password was changed meanwhile."""
    await conn.execute(
        update(users)
        .where(users.c.id == user_id, users.c.password_hash == old_hash)
        .values(password_hash=new_hash)
    )


async def set_language(conn: AsyncConnection, user_id: int, language: str) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(language=language))


async def confirm_email(conn: AsyncConnection, user_id: int, now: datetime) -> None:
    """Record that the owner proved the address is theirs (keeps the first confirmation)."""
    await conn.execute(
        update(users)
        .where(users.c.id == user_id, users.c.email_confirmed_at.is_(None))
        .values(email_confirmed_at=now)
    )


async def set_date_of_birth(conn: AsyncConnection, user_id: int, date_of_birth: date) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(date_of_birth=date_of_birth))


def _patients(practice_id: int):
    return (
        select(users)
        .join(memberships, memberships.c.user_id == users.c.id)
        .where(memberships.c.practice_id == practice_id, memberships.c.role == "patient")
    )


async def patients_of(conn: AsyncConnection, practice_id: int) -> list[User]:
    query = _patients(practice_id).order_by(users.c.display_name, users.c.id)
    return [_user(row) for row in await conn.execute(query)]


async def patient_of(conn: AsyncConnection, practice_id: int, user_id: int) -> User | None:
    """The user if they are a patient of this practice; None for anyone else's."""
    row = (await conn.execute(_patients(practice_id).where(users.c.id == user_id))).first()
    return None if row is None else _user(row)


async def make_operator(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(is_operator=True))


async def email_owner(conn: AsyncConnection, email: str) -> int | None:
    """The id of the user whose address this is, ignoring case."""
    query = select(users.c.id).where(users.c.email_key == email.casefold())
    return (await conn.execute(query)).scalar_one_or_none()


async def set_pending_email(conn: AsyncConnection, user_id: int, email: str | None) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(pending_email=email))


async def change_email(conn: AsyncConnection, user_id: int, email: str, now: datetime) -> None:
    """Make a proven address the user's own; the unique email_key refuses a taken one."""
    await conn.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(email=email, email_key=email.casefold(), email_confirmed_at=now, pending_email=None)
    )
