"""The waiting room and the call page, and the WebSockets that keep them live."""

from __future__ import annotations

import asyncio
import json

from aiohttp import WSMsgType, web

from smartpractice.errors import UserError
from smartpractice.keys import (
    active_session_key,
    guest_session_key,
    services_key,
    settings_key,
)
from smartpractice.rooms.waiting_room import (
    NotParticipant,
    Seat,
    consultation_channel,
    person_channel,
    practice_channel,
)
from smartpractice.times import local
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.session import require_staff

# Dead connections (a closed laptop, a lost network) show as gone within two beats.
HEARTBEAT_SECONDS = 5
MESSAGE_BYTES = 4096


async def seat_of(request: web.Request) -> Seat:
    active, guest = request.get(active_session_key), request.get(guest_session_key)
    if active is None and guest is None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            raise web.HTTPUnauthorized()
        login = request.app.router["login"].url_for().with_query(next=request.path)
        raise web.HTTPSeeOther(login)
    try:
        return await request.app[services_key].waiting_room.seat(
            int(request.match_info["id"]),
            user_id=active.user.id if active else None,
            invitation_id=guest.invitation_id if guest else None,
        )
    except NotParticipant:
        raise web.HTTPNotFound() from None


async def waiting_page(request: web.Request) -> web.StreamResponse:
    seat = await seat_of(request)
    services = request.app[services_key]
    call = request.app.router["call"].url_for(id=str(seat.consultation.id))
    if seat.role == "clinician" or await services.waiting_room.is_admitted(seat):
        return see_other(call)
    try:
        await services.waiting_room.check_open(seat)
    except UserError as error:
        return render(request, "room_closed.html", {"message": user_message(request, error)}, status=410)
    policy = await services.consultations.policy(seat.consultation.practice_id)
    context = {
        "seat": seat,
        "zone": policy.time_zone,
        "opens_at": services.waiting_room.opens_at(seat, policy.join_window_minutes),
    }
    return render(request, "waiting.html", context)


def check_origin(request: web.Request) -> None:
    """WebSockets skip CORS: without this, any site could open one with the user's cookie."""
    if request.headers.get("Origin") != request.app[settings_key].origin:
        raise web.HTTPForbidden(reason="foreign origin")


async def _open_socket(request: web.Request) -> web.WebSocketResponse:
    socket = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, max_msg_size=MESSAGE_BYTES)
    await socket.prepare(request)
    return socket


async def _forward(socket: web.WebSocketResponse, queue: asyncio.Queue[dict]) -> None:
    while True:
        message = await queue.get()
        await socket.send_json(message)


async def _read_until_closed(socket: web.WebSocketResponse, handle) -> None:
    async for message in socket:
        if message.type != WSMsgType.TEXT:
            continue
        try:
            payload = json.loads(message.data)
        except (ValueError, RecursionError):  # deep nesting fits in a small message
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            await socket.send_json({"type": "error", "code": "malformed", "message": "Expected a JSON object with a type."})
            continue
        await handle(payload)


async def participant_socket(request: web.Request) -> web.StreamResponse:
    """A waiting person's line: told when admitted, of texts, and when the consultation ends."""
    check_origin(request)
    seat = await seat_of(request)
    room = request.app[services_key].waiting_room
    socket = await _open_socket(request)
    try:
        await room.check_open(seat)
    except UserError as error:
        await socket.send_json({"type": "closed", "code": error.code, "message": user_message(request, error)})
        await socket.close()
        return socket
    if await room.is_admitted(seat):
        await socket.send_json({"type": "admitted"})
        await socket.close()
        return socket
    policy = await request.app[services_key].consultations.policy(seat.consultation.practice_id)
    if room.opens_at(seat, policy.join_window_minutes) is not None:
        await socket.send_json({"type": "not_open"})
        await socket.close()
        return socket

    async def refuse(payload: dict) -> None:
        await socket.send_json({"type": "error", "code": "unknown_message", "message": "This socket takes no messages."})

    channels = (person_channel(seat.consultation.id, seat.key), consultation_channel(seat.consultation.id))
    async with room.state.subscribe(*channels) as news:
        forwarder = asyncio.create_task(_forward(socket, news))
        await room.enter(seat)
        await socket.send_json({"type": "waiting"})
        try:
            await _read_until_closed(socket, refuse)
        finally:
            forwarder.cancel()
            # aiohttp cancels the handler when the connection drops; leaving the
            # waiting list must still happen.
            await asyncio.shield(room.leave(seat))
    return socket


async def _snapshot(request: web.Request, practice_id: int) -> dict:
    services = request.app[services_key]
    waiting = await services.waiting_room.waiting(practice_id)
    zone, found = await services.consultations.headlines(practice_id, {p.consultation_id for p in waiting})
    titles = {c.id: f"{local(c.starts_at, zone):%H:%M} {c.title}".strip() for c in found}
    people = []
    for person in waiting:
        people.append({
            "consultation": person.consultation_id, "participant": person.key, "name": person.name,
            "since": person.since.isoformat(), "title": titles[person.consultation_id],
        })
    return {"type": "waiting", "people": people}


async def staff_socket(request: web.Request) -> web.StreamResponse:
    """The clinician's live view of everyone waiting in the practice, and their commands."""
    check_origin(request)
    if request.get(active_session_key) is None:
        raise web.HTTPUnauthorized()
    active, membership = await require_staff(request, request.match_info["slug"])
    practice = membership.practice
    room = request.app[services_key].waiting_room
    socket = await _open_socket(request)

    async def command(payload: dict) -> None:
        kind, consultation = payload["type"], payload.get("consultation")
        if kind not in ("admit", "admit_all", "message") or not isinstance(consultation, int):
            await socket.send_json({"type": "error", "code": "unknown_message", "message": "Unknown command."})
            return
        try:
            if kind == "message":
                await room.tell(practice.id, consultation, str(payload.get("participant", "")),
                                str(payload.get("text", "")))
            else:
                await room.admit(practice.id, consultation, None if kind == "admit_all" else str(payload.get("participant")),
                                 actor=active.user.id)
        except UserError as error:
            await socket.send_json({"type": "error", "code": error.code, "message": user_message(request, error)})

    async with room.state.subscribe(practice_channel(practice.id)) as news:
        async def push() -> None:
            while True:
                await socket.send_json(await _snapshot(request, practice.id))
                await news.get()

        pusher = asyncio.create_task(push())
        try:
            await _read_until_closed(socket, command)
        finally:
            pusher.cancel()
    return socket


async def end(request: web.Request) -> web.StreamResponse:
    active, membership = await require_staff(request, request.match_info["slug"])
    consultation_id = int(request.match_info["id"])
    if not await request.app[services_key].waiting_room.end(membership.practice.id, consultation_id,
                                                             actor=active.user.id):
        raise web.HTTPNotFound()
    return see_other(request.app.router["consultation"].url_for(slug=membership.practice.slug, id=str(consultation_id)))
