"""Problems a user can fix, and a server too busy to start on a request soon. The web layer
turns them into re-shown forms, pages and API errors."""

from __future__ import annotations

import gettext
import random
from typing import cast

from sqlalchemy.exc import DBAPIError, OperationalError
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
        if not self.params:
            return chosen
        # A parameter that says itself per language (times.SpokenTime) learns it here.
        language = str((translations.info() or {}).get("language") or "en")
        return chosen % {name: value.localized(language) if hasattr(value, "localized") else value
                         for name, value in self.params.items()}


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
    """The database's ways of saying "not now": no pooled connection became free within the
    pool's timeout, SQLite's write lock was not got within busy_timeout, or the connection
    was lost under the request."""
    if isinstance(error, PoolTimeout):
        return Busy("database_connections")
    if isinstance(error, OperationalError) and "database is locked" in str(error.orig):
        return Busy("database_locked")
    # The database closed the connection mid-request (a restart, pg_terminate_backend): the
    # pool has replaced its connections by now, so the retry the answer asks for is served.
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return Busy("database_connection_lost")
    return None
