"""Logging that keeps personal data and tokens out (ASVS 16.2.5, 16.4.1)."""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger


class AccessLogger(AbstractAccessLogger):
    """Logs the route pattern, not the path: `/confirm/{token}` instead of the token itself.
    No client address and no query string, since both can identify a patient."""

    def log(self, request, response, time: float) -> None:
        route = request.match_info.route
        resource = route.resource if route is not None else None
        pattern = resource.canonical if resource is not None else "(unmatched)"
        self.logger.info(
            "%s %s %d %.1fms", request.method, pattern, response.status, time * 1000
        )


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # Newlines from input must not start a forged log line.
        return super().format(record).replace("\n", "\\n").replace("\r", "\\r")


def configure(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_OneLine("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Alembic announces its dialect at every schema check; that is noise in a server log.
    logging.getLogger("alembic").setLevel(logging.WARNING)
