"""Practices: creating one with its first admin."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.accounts.passwords import generate_password
from smartpractice.accounts.users import Users
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.names import tidy
from smartpractice.storage import practices as store
from smartpractice.storage.engine import read_only
from smartpractice.storage.practices import Membership as Membership
from smartpractice.storage.practices import Practice as Practice


@dataclass(frozen=True)
class NewPractice:
    practice: Practice
    admin_username: str
    admin_password: str


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name.replace("ß", "ss")).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48] or "praxis"


class Practices:
    def __init__(self, *, engine: AsyncEngine, clock: Clock, users: Users) -> None:
        self._engine = engine
        self._reads = read_only(engine)  # for the lookups of one statement each, below
        self._clock = clock
        self._users = users

    async def by_id(self, practice_id: int) -> Practice | None:
        async with self._reads.connect() as conn:
            return await store.practice_by_id(conn, practice_id)

    async def by_slug(self, slug: str) -> Practice | None:
        async with self._reads.connect() as conn:
            return await store.practice_by_slug(conn, slug)

    async def memberships_of(self, user_id: int) -> list[Membership]:
        async with self._reads.connect() as conn:
            return await store.memberships_of(conn, user_id)

    async def membership_in(self, user_id: int, slug: str) -> Membership | None:
        async with self._reads.connect() as conn:
            return await store.membership_in(conn, user_id, slug)

    async def create(
        self, name: str, *, admin_email: str, admin_username: str, admin_name: str | None = None,
        admin_treats_patients: bool = False,
    ) -> NewPractice:
        """Create a practice and its first admin, who gets a generated initial password (and,
        treating patients, the practice's first seat)."""
        name = tidy(name)
        if not name or len(name) > 200:
            raise UserError("practice_name_invalid", N_("Please enter a practice name of at most 200 characters."))
        password = generate_password()
        async with self._engine.begin() as conn:
            slug = base = slugify(name)
            counter = 1
            while await store.slug_exists(conn, slug):
                counter += 1
                slug = f"{base}-{counter}"
            practice = await store.insert_practice(conn, slug=slug, name=name, now=self._clock.now())
            user_id = await self._users.create_with_initial_password(
                conn,
                username=admin_username,
                email=admin_email,
                display_name=admin_name or admin_username,
                password=password,
                staff=True,
                context=(name,),
            )
            await store.add_member(
                conn, practice_id=practice.id, user_id=user_id, role="admin", now=self._clock.now(),
                treats_patients=admin_treats_patients,
            )
        return NewPractice(practice, admin_username, password)
