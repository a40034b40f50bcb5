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

from sqlalchemy.ext.asyncio import AsyncConnection

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


@dataclass(frozen=True)
class Once:
    """A form's one-time token and who sent it: tokens of two people never meet. `owner`:
    a user's id, or for a TAN guest without an account "invitation-<id>"."""

    owner: int | str
    token: str

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.owner}:{self.token}".encode()).hexdigest()


async def claim(conn: AsyncConnection, once: Once | None, now: datetime) -> None:
    """Take the token first thing in the caller's transaction (None: not a form, nothing to take)."""
    if once is None:
        return
    if not TOKEN.fullmatch(once.token):
        raise _outdated()
    if not await store.claim(conn, once.key, now):
        made = await store.made_by(conn, once.key)
        if made is None:
            raise _outdated()
        raise AlreadySubmitted(*made)


async def settle(conn: AsyncConnection, once: Once | None, kind: str, object_id: int) -> None:
    """Record what this sending made, in the same transaction as the claim."""
    if once is not None:
        await store.settle(conn, once.key, kind, object_id)
