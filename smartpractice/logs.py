"""Logging that keeps personal data and tokens out (ASVS 16.2.5, 16.4.1)."""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

# The id of the request a log record belongs to. A context variable is per task, so each
# request's records carry its own id without it being handed to every function.
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
# The same id on the request, for the access logger, which runs outside the handler's context.
request_id_key = web.RequestKey("request_id", str)
# The practice a request acted in (a practice page, an API key), for the access line.
practice_id_key = web.RequestKey("practice_id", int)
# What a JSON record may carry besides its message: set with `extra=`, never personal data.
FIELDS = ("method", "route", "status", "duration_ms", "practice_id")


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
        request_id = request.get(request_id_key, "")
        extra = {"method": request.method, "route": pattern, "status": response.status,
                 "duration_ms": round(time * 1000, 1), "request_id": request_id}
        if practice_id_key in request:
            extra["practice_id"] = request[practice_id_key]
        self.logger.info("%s %s %d %.1fms", request.method, pattern, response.status, time * 1000, extra=extra)


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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: a traceback is a field of its record, not thirty lines."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "") or REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update({name: getattr(record, name) for name in FIELDS if hasattr(record, name)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _WithRequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = REQUEST_ID.get() or "-"
        return True


def configure(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.addFilter(_WithRequestId())
        handler.setFormatter(_OneLine("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("aiohttp.server").addFilter(RefusedRequests())
    # Alembic announces its dialect at every schema check; that is noise in a server log.
    logging.getLogger("alembic").setLevel(logging.WARNING)
