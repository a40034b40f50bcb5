"""One-time form tokens, the other half of post/redirect/get.

A form that creates something (a consultation, an invitation) carries a random token. The
service that makes the record claims the token in the same transaction, so a reload, a
resubmission or a double click makes one record and sends one mail; the later sendings
raise AlreadySubmitted with what the first one made, and the page leads there.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.storage import submissions as store

TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_token() -> str:
    return secrets.token_urlsafe(18)


class AlreadySubmitted(Exception):
    """This form was sent before; `kind` and `object_id` name what that sending made."""

    def __init__(self, kind: str, object_id: int) -> None:
        super().__init__(kind, object_id)
        self.kind = kind
        self.object_id = object_id


def _outdated() -> UserError:
    return UserError(
        "form_outdated",
        N_("This form had expired, so nothing was saved or sent. Please check the entries and send it again."),
    )


class KeyReused(Exception):
    """An Idempotency-Key came again with a different request."""


@dataclass(frozen=True)
class Once:
    """A form's one-time token and who sent it: tokens of two people never meet. `owner`:
    a user's id, or for a TAN guest without an account "invitation-<id>"."""

    owner: int | str
    token: str

    @property
    def keys(self) -> tuple[str, ...]:
        return (hashlib.sha256(f"{self.owner}:{self.token}".encode()).hexdigest(),)

    def check(self) -> None:
        if not TOKEN.fullmatch(self.token):
            raise _outdated()


@dataclass(frozen=True)
class Idempotent:
    """An API request's Idempotency-Key (IETF draft-ietf-httpapi-idempotency-key-header)
    and a fingerprint of what the request asks. Two rows: the key, and the key with this
    fingerprint. The same key with the same request leads to what the first request made;
    with another request the second row is missing, and claim raises KeyReused."""

    practice_id: int
    token: str  # the header's value, checked where it entered
    fingerprint: str

    @property
    def keys(self) -> tuple[str, ...]:
        base = f"api:{self.practice_id}:{self.token}"
        return (hashlib.sha256(base.encode()).hexdigest(),
                hashlib.sha256(f"{base}:{self.fingerprint}".encode()).hexdigest())

    def check(self) -> None:
        pass


async def claim(conn: AsyncConnection, once: Once | Idempotent | None, now: datetime) -> None:
    """Take the token first thing in the caller's transaction (None: not a form, nothing to take)."""
    if once is None:
        return
    once.check()
    first, *rest = once.keys
    if not await store.claim(conn, first, now):
        made = await store.made_by(conn, first)
        if made is None:
            raise _outdated()
        if rest and await store.made_by(conn, rest[0]) is None:
            raise KeyReused()
        raise AlreadySubmitted(*made)
    for key in rest:
        await store.claim(conn, key, now)


async def sent_before(engine: AsyncEngine, once: Once | None, now: datetime) -> None:
    """Raise AlreadySubmitted if an earlier sending of this form made something, waiting for
    one still in flight; takes nothing. For a sending refused before its own claim, such as a
    double click whose second one-time code the first sending had just used up."""
    if once is None or not TOKEN.fullmatch(once.token):
        return
    async with engine.connect() as conn:
        try:
            await claim(conn, once, now)
        except UserError:
            pass
        await conn.rollback()


async def settle(conn: AsyncConnection, once: Once | Idempotent | None, kind: str, object_id: int) -> None:
    """Record what this sending made, in the same transaction as the claim."""
    if once is not None:
        for key in once.keys:
            await store.settle(conn, key, kind, object_id)
