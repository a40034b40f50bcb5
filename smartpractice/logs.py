"""Logging that keeps personal data and tokens out (ASVS 16.2.5, 16.4.1)."""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError


class AccessLogger(AbstractAccessLogger):
    """Logs the route pattern, not the path: `/confirm/{token}` instead of the token itself.
    No client address and no query string, since both can identify a patient."""

    def log(self, request, response, time: float) -> None:
        try:
            route = request.match_info.route
        except (AttributeError, AssertionError):
            # A request aiohttp's parser refused (a huge header, a NUL) never got a
            # route, and `match_info` asserts it has one: there is no public test.
            route = None
        resource = route.resource if route is not None else None
        pattern = resource.canonical if resource is not None else "(unmatched)"
        self.logger.info(
            "%s %s %d %.1fms", request.method, pattern, response.status, time * 1000
        )


class RefusedRequests(logging.Filter):
    """aiohttp logs every request its parser refuses (a 9,000-byte header, a NUL) as an
    error with a traceback: anyone could fill the log with them. They are the client's
    fault, so they become one warning line without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = f"{record.msg}: refused, {type(error).__name__} {error.code}"
            record.exc_info = record.exc_text = None
        return True


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # Newlines from input must not start a forged log line.
        return super().format(record).replace("\n", "\\n").replace("\r", "\\r")


def configure(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_OneLine("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("aiohttp.server").addFilter(RefusedRequests())
    # Alembic announces its dialect at every schema check; that is noise in a server log.
    logging.getLogger("alembic").setLevel(logging.WARNING)
