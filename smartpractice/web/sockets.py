"""What both WebSocket endpoints share: the Origin check, the heartbeat, and the loop that
feeds a protocol connection (rooms/protocol.py) from the client and from the room."""

from __future__ import annotations

import asyncio
import contextlib
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


async def serve(socket: web.WebSocketResponse, connection: Connection, news: asyncio.Queue[dict]) -> None:
    """Feed the connection what the client sends and what happens in the room, each in
    order, until either side ends it."""

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
        delivery.cancel()
        # aiohttp cancels the handler when the connection drops; what leaving means
        # (off the waiting list, out of the call) must still happen.
        await asyncio.shield(connection.closed())


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
    async with contextlib.AsyncExitStack() as stack:
        try:
            inbox = await stack.enter_async_context(news)
        except RoomsUnavailable as error:
            return await refuse(request, max_bytes, error)
        socket = await open_socket(request, max_bytes)
        draining.open(socket, kind)
        try:
            await serve(socket, connect(socket), inbox)
        finally:
            draining.closed(socket)
    return socket
