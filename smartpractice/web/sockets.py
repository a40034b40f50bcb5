"""What both WebSocket endpoints share: the Origin check, the heartbeat, and the loop that
feeds a protocol connection (rooms/protocol.py) from the client and from the room."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from aiohttp import WSMsgType, web

from smartpractice.keys import draining_key, settings_key
from smartpractice.rooms.protocol import CLOSE_TRY_AGAIN, error_message
from smartpractice.rooms.state import RoomsUnavailable
from smartpractice.web.responses import user_message

# Dead connections (a closed laptop, a lost network) show as gone within two beats.
HEARTBEAT_SECONDS = 5


class Connection(Protocol):
    async def receive(self, raw: str) -> int | None: ...
    async def deliver(self, news: dict) -> int | None: ...
    async def closed(self) -> None: ...


def check_origin(request: web.Request) -> None:
    """WebSockets skip CORS: without this, any site could open one with the user's cookie."""
    if request.headers.get("Origin") != request.app[settings_key].origin:
        raise web.HTTPForbidden(reason="foreign origin")


async def open_socket(request: web.Request, max_bytes: int) -> web.WebSocketResponse:
    socket = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, max_msg_size=max_bytes)
    await socket.prepare(request)
    return socket


async def refuse(request: web.Request, max_bytes: int, error: RoomsUnavailable) -> web.WebSocketResponse:
    """The room state cannot be reached: the socket opens, says why in the client's
    language and closes with 1013 (try again later), so the page can tell and retry."""
    socket = await open_socket(request, max_bytes)
    await sender(socket)(error_message(error, lambda e: user_message(request, e)))
    await socket.close(code=CLOSE_TRY_AGAIN)
    return socket


def sender(socket: web.WebSocketResponse) -> Callable[[dict], Awaitable[None]]:
    """How a connection sends: what is meant for a socket that closed meanwhile (the
    client left, a protocol error) is dropped rather than raised into the handler."""

    async def send(message: dict) -> None:
        if not socket.closed:
            with contextlib.suppress(ConnectionResetError):
                await socket.send_json(message)

    return send


async def serve(socket: web.WebSocketResponse, connection: Connection, news: asyncio.Queue[dict],
                ended: Callable[[], None] = lambda: None) -> None:
    """Feed the connection what the client sends and what happens in the room, each in
    order, until either side ends it; `ended` is told before the leaving is done."""

    async def deliver() -> None:
        while True:
            code = await connection.deliver(await news.get())
            if code is not None:
                await socket.close(code=code)
                return

    delivery = asyncio.create_task(deliver())
    try:
        async for message in socket:
            if message.type == WSMsgType.ERROR:
                break  # aiohttp has closed it already (1007, 1009): nothing more can be sent
            # Binary frames are not part of the protocol: answered as malformed.
            code = await connection.receive(message.data if message.type == WSMsgType.TEXT else "")
            if code is not None:
                await socket.close(code=code)
                break
    finally:
        ended()
        delivery.cancel()
        # aiohttp cancels the handler when the connection drops; what leaving means
        # (off the waiting list, out of the call) must still happen, and to its end: a
        # handler that ended while it ran let the app's shutdown dispose of the database
        # under it, and the connection it held stayed open for good (the tests' SQLite
        # file had one more open connection after each such test). Both waits end within
        # the database's own timeouts.
        cancelled = await _to_the_end(delivery)
        leaving = asyncio.ensure_future(connection.closed())
        cancelled |= await _to_the_end(leaving)
        leaving.result()
        if cancelled:
            raise asyncio.CancelledError


async def _to_the_end(task: asyncio.Future[None]) -> bool:
    """Wait for the task through cancellations of the caller; whether there were any."""
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    return cancelled


async def run(request: web.Request, kind: str, max_bytes: int,
              news: AbstractAsyncContextManager[asyncio.Queue[dict]],
              connect: Callable[[web.WebSocketResponse], Connection]) -> web.WebSocketResponse:
    """Listen to the room first, then open the socket and serve it; a room state that
    cannot be reached gets the socket refused (`refuse`) instead of a 500. The socket is
    counted by `kind` and, when the instance stops, closed with 1012 (draining.py)."""
    draining = request.app[draining_key]
    if draining.started:
        # A request that was already on its way in when the stop began.
        raise web.HTTPServiceUnavailable()
    socket: web.WebSocketResponse | None = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            try:
                inbox = await stack.enter_async_context(news)
            except RoomsUnavailable as error:
                return await refuse(request, max_bytes, error)
            socket = await open_socket(request, max_bytes)
            draining.open(socket, kind)
            try:
                # No longer counted as open, nor to be closed at a stop, once its loop ended.
                await serve(socket, connect(socket), inbox, ended=functools.partial(draining.closed, socket))
            finally:
                draining.closed(socket)
    except asyncio.CancelledError:
        # aiohttp cancels the handler once the connection is gone (handler_cancellation),
        # which is how nearly every socket ends, a close for 1007 or 1009 included. A
        # cancelled handler gets no access line from aiohttp, so the socket that was
        # served is returned instead. Any other cancellation goes on up.
        if socket is None or request.transport is not None:
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    return socket
