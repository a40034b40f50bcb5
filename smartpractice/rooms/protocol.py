"""What the two socket protocols share (docs/signalling.md): every message is a JSON
object with a `type`; a schema per protocol says which types a client may send and what
each field must be; whatever does not fit is answered with an `error` message carrying a
stable code and a translated text. Neither protocol knows aiohttp: a web handler feeds
a connection the text it received and sends what the connection hands back.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping

from smartpractice.errors import UserError
from smartpractice.i18n import N_

Field = Callable[[object], bool]
Schema = Mapping[str, Mapping[str, Field]]
Send = Callable[[dict], Awaitable[None]]
Translate = Callable[[UserError], str]

CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_REPLACED = 4000
CLOSE_ENDED = 4001
CLOSE_VERSION = 4002
# RFC 6455 "try again later": the room state (Redis) is unreachable.
CLOSE_TRY_AGAIN = 1013

# This many refused messages, less one per second, end the connection (close 1008).
RATE_STRIKES = 50


def text(limit: int) -> Field:
    return lambda value: isinstance(value, str) and 0 < len(value) <= limit


def text_or_none(value: object, limit: int) -> bool:
    return value is None or (isinstance(value, str) and len(value) <= limit)


def flag(value: object) -> bool:
    return isinstance(value, bool)


def integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def participant(value: object) -> bool:
    """A participant's key in a consultation (`u12`, `i7`)."""
    return isinstance(value, str) and 0 < len(value) <= 64


JOIN = {"version": integer}


def invalid_field() -> UserError:
    return UserError("invalid_field", N_("A field of this message is missing or invalid."))


def parse(raw: str, schema: Schema) -> dict:
    """The message, checked against `schema`; UserError says what is wrong."""
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):  # deep nesting fits in a small message
        message = None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise UserError("malformed", N_("Expected a JSON object with a type."))
    fields = schema.get(message["type"])
    if fields is None:
        raise UserError("unknown_type", N_("This message type is not part of the protocol."))
    for name, valid in fields.items():
        if name not in message or not valid(message[name]):
            raise invalid_field()
    return message


def check_version(message: dict, version: int) -> None:
    if message["version"] != version:
        raise UserError("version_unsupported", N_("This page is out of date; please reload it."))


def error_message(error: UserError, translate: Translate, about: dict | None = None) -> dict:
    reply = {"type": "error", "code": error.code, "message": translate(error)}
    if about:
        reply["about"] = about["type"]
    return reply


class RateLimit:
    """A token bucket: bursts pass, floods do not. Each refused message is a strike;
    strikes are forgiven at one per second, so only a sustained flood adds up."""

    def __init__(self, *, per_second: float, burst: int) -> None:
        self._rate, self._burst = per_second, burst
        self._tokens = float(burst)
        self._at = time.monotonic()
        self.strikes = 0.0

    def allow(self) -> bool:
        now = time.monotonic()
        elapsed, self._at = now - self._at, now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self.strikes = max(0.0, self.strikes - elapsed)
        if self._tokens < 1:
            self.strikes += 1
            return False
        self._tokens -= 1
        return True

    def refusal(self) -> tuple[UserError | None, int | None]:
        """For a refused message: the error to answer (once per flood: answering each
        would feed it) and the close code once the flood has gone on too long."""
        if self.strikes >= RATE_STRIKES:
            return None, CLOSE_POLICY
        if self.strikes < 2:
            return UserError("rate_limited", N_("Too many messages; please slow down.")), None
        return None, None


class Connection(ABC):
    """One socket's side of a protocol: parsing against the schema, the rate limit, the
    version in `join`, and errors; a subclass handles each checked message in `_on_<type>`."""

    schema: Schema
    version: int
    rate: tuple[float, int]  # messages per second, burst

    def __init__(self, *, send: Send, translate: Translate) -> None:
        self.joined = False
        self._send = send
        self._translate = translate
        self._rate = RateLimit(per_second=self.rate[0], burst=self.rate[1])

    def parse(self, raw: str) -> dict:
        return parse(raw, self.schema)

    async def receive(self, raw: str) -> int | None:
        """Handle one message from the client; a close code when the connection must end."""
        if not self._rate.allow():
            error, close = self._rate.refusal()
            if error is not None:
                await self._error(error)
            return close
        message: dict | None = None
        try:
            message = self.parse(raw)
            if message["type"] == "join":
                return await self._join(message)
            if not self.joined:
                raise UserError("not_joined", N_("Send join first."))
            return await getattr(self, "_on_" + message["type"])(message)
        except UserError as error:
            await self._error(error, message)
            return None

    async def _join(self, message: dict) -> int | None:
        try:
            check_version(message, self.version)
        except UserError as error:
            await self._error(error)
            return CLOSE_VERSION
        if self.joined:
            raise UserError("already_joined", N_("This connection has already joined."))
        await self._may_join()
        self.joined = True
        return await self._joined()

    async def _may_join(self) -> None:  # noqa: B027 - most connections may always join
        """A UserError when this connection may not join (yet); it can try again."""

    @abstractmethod
    async def _joined(self) -> int | None:
        """What joining does: a close code when the connection ends with it. A failure
        from here on leaves the connection joined (the others may have heard of it)."""

    async def _error(self, error: UserError, about: dict | None = None) -> None:
        await self._send(error_message(error, self._translate, about))
