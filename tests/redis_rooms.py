"""Helpers for the tests against a real Redis (127.0.0.1:6379, or
SMARTPRACTICE_TEST_REDIS_URL): a key prefix of each test's own, removed afterwards (the
server is shared: never FLUSHALL), a started RedisRoomState, and a TCP proxy in front of
Redis that a test can cut and restore."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from aiohttp.test_utils import unused_port

from smartpractice.rooms.redis_state import RedisRoomState, connect

REDIS_URL = os.environ.get("SMARTPRACTICE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def new_prefix() -> str:
    return "test-" + secrets.token_hex(6)


async def drop_prefix(prefix: str) -> None:
    """Delete every key under `prefix` (and nothing else)."""
    client = connect(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + ":*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def keys_under(prefix: str) -> set[str]:
    client = connect(REDIS_URL)
    try:
        return {key.decode() async for key in client.scan_iter(match=prefix + ":*", count=500)}
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def redis_state(prefix: str, url: str = REDIS_URL, **options: float) -> AsyncIterator[RedisRoomState]:
    client = connect(url)
    state = RedisRoomState(client, prefix=prefix, name="test", **options)
    await state.start()
    try:
        yield state
    finally:
        await state.close()
        await client.aclose()


def closed_port_url() -> str:
    """A Redis URL where nothing listens."""
    return f"redis://127.0.0.1:{unused_port()}/0"


class RedisProxy:
    """Forwards TCP from a local port to Redis until `cut`: then every connection through
    it is closed and new ones are refused, as when Redis or the network goes away."""

    def __init__(self, url: str = REDIS_URL, *, listening: socket.socket | None = None) -> None:
        """`listening`: a bound, listening socket to accept on (one made in a network
        namespace, tests/networks.py) instead of a free port on 127.0.0.1; not restartable
        after `cut`."""
        parts = urlsplit(url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._db = parts.path or "/0"
        self._listening = listening
        self.host, self.port = listening.getsockname()[:2] if listening else ("127.0.0.1", unused_port())
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}{self._db}"

    async def start(self) -> None:
        """Accept (again): Redis is back."""
        if self._server is None and self._listening is not None:
            self._server = await asyncio.start_server(self._accept, sock=self._listening)
        elif self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, upstream_writer))
        pipes = [asyncio.create_task(self._pipe(reader, upstream_writer)),
                 asyncio.create_task(self._pipe(upstream_reader, writer))]
        self._tasks.update(pipes)
        await asyncio.gather(*pipes)
        self._tasks.difference_update(pipes)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, RuntimeError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)
