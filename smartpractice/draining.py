"""A web instance's stop (SIGTERM): it stops listening, says so on /readyz, tells every
open socket to reconnect elsewhere, lets the requests in hand finish, and exits within
`SMARTPRACTICE_STOP_SECONDS` (docs/operations.md)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Protocol

# RFC 6455 registry: 1012 "Service Restart", the client is expected to reconnect.
CLOSE_RESTARTING = 1012


class ClosableSocket(Protocol):
    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...


class Draining:
    """The open sockets of this instance, by kind, and whether it is stopping."""

    def __init__(self, *, stop_seconds: float) -> None:
        self.stop_seconds = stop_seconds
        self._sockets: dict[ClosableSocket, str] = {}
        self._deadline: float | None = None

    @property
    def started(self) -> bool:
        return self._deadline is not None

    def left(self, *, at_least: float = 1.0) -> float:
        """Seconds left of the stop's budget; `at_least` so that each part gets a moment."""
        if self._deadline is None:
            return self.stop_seconds
        return max(at_least, self._deadline - time.monotonic())

    def open(self, socket: ClosableSocket, kind: str) -> None:
        self._sockets[socket] = kind

    def closed(self, socket: ClosableSocket) -> None:
        self._sockets.pop(socket, None)

    def counts(self) -> Counter[str]:
        return Counter(self._sockets.values())

    async def start(self) -> None:
        """Close every open socket with 1012; their handlers then end like any other."""
        if self._deadline is None:
            self._deadline = time.monotonic() + self.stop_seconds
        sockets = list(self._sockets)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.left()):
                await asyncio.gather(*(socket.close(code=CLOSE_RESTARTING, message=b"restarting")
                                       for socket in sockets), return_exceptions=True)
