"""Problems a user can fix, and a server too busy to start on a request soon. The web layer
turns them into re-shown forms, pages and API errors."""

from __future__ import annotations

import gettext
import random
from typing import cast

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class UserError(Exception):
    """`code` is stable (the API returns it); `message` is a catalog msgid with %(name)s
    params, or a (singular, plural) pair marked with NP_ whose form the parameter named
    `number` chooses ("1 Minute", "5 Minuten")."""

    status = 400

    def __init__(self, code: str, message: str | tuple[str, str], *, number: str = "", **params: object) -> None:
        super().__init__(code)
        self.code = code
        self.message = message
        self.number = number
        self.params = params

    def text(self, translations: gettext.NullTranslations | None = None) -> str:
        """The message in the catalog's language (English, the msgids, without one), filled in."""
        translations = translations or gettext.NullTranslations()
        if isinstance(self.message, tuple):
            chosen = translations.ngettext(*self.message, cast(int, self.params[self.number]))
        else:
            chosen = translations.gettext(self.message)
        return chosen % self.params if self.params else chosen


class Busy(Exception):
    """More work waits than can be started soon (password hashing, database connections):
    nobody's fault, and it passes. Answered 503 with Retry-After: a page or form that says
    "try again in a few seconds", or the API error `busy`."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what
        # A crowd told the same second would come back together.
        self.retry_after = random.randint(2, 6)


def busy_database(error: BaseException) -> Busy | None:
    """The database's two ways of saying it is too busy: no pooled connection became free
    within the pool's timeout, or SQLite's write lock was not got within busy_timeout."""
    if isinstance(error, PoolTimeout):
        return Busy("database_connections")
    if isinstance(error, OperationalError) and "database is locked" in str(error.orig):
        return Busy("database_locked")
    return None
