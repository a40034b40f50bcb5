"""The call page and its signalling WebSocket (protocol in rooms/call_protocol.py)."""

from __future__ import annotations

import functools

from aiohttp import web

from smartpractice.errors import UserError
from smartpractice.keys import active_session_key, services_key
from smartpractice.rooms import call_protocol
from smartpractice.rooms.state import RoomsUnavailable
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.rooms import alive_seconds, seat_of, unavailable
from smartpractice.web.sockets import check_origin, refuse, run, sender


def client_kind(user_agent: str) -> str:
    """A class of client for the session record; the User-Agent itself is not kept."""
    if "smartpractice-app" in user_agent:
        return "app"
    return "mobile" if "Mobi" in user_agent or "Android" in user_agent else "desktop"


async def call_page(request: web.Request) -> web.StreamResponse:
    seat = await seat_of(request)
    services = request.app[services_key]
    try:
        await services.waiting_room.check_open(seat)
    except UserError as error:
        return render(request, "room_closed.html", {"message": user_message(request, error)}, status=410)
    try:
        admitted = await services.waiting_room.is_admitted(seat)
    except RoomsUnavailable as error:
        return unavailable(request, error)
    if not admitted:
        return see_other(request.app.router["waiting_room"].url_for(id=str(seat.consultation.id)))
    policy = await services.consultations.policy(seat.consultation.practice_id)
    context: dict[str, object] = {"seat": seat, "practice": None, "end": None, "alive_seconds": alive_seconds(request),
                                  "e2ee_policy": policy.e2ee_policy}
    if seat.role == "clinician":
        # Staff see who is waiting (an interpreter, a relative) and can end the consultation.
        practice = context["practice"] = await services.practices.by_id(seat.consultation.practice_id)
        if practice is None:
            raise web.HTTPNotFound()
        context["end"] = request.app.router["consultation_end"].url_for(slug=practice.slug, id=str(seat.consultation.id))
    return render(request, "call.html", context)


async def call_socket(request: web.Request) -> web.StreamResponse:
    """Everything is refused before the upgrade (401, 403, 404, 410) except what the
    protocol itself answers: a page that gets no socket reloads and shows why."""
    check_origin(request)
    seat = await seat_of(request)
    services = request.app[services_key]
    try:
        await services.waiting_room.check_open(seat)
    except UserError:
        raise web.HTTPGone() from None
    try:
        admitted = await services.waiting_room.is_admitted(seat)
    except RoomsUnavailable as error:
        return await refuse(request, call_protocol.MESSAGE_BYTES, error)
    if not admitted:
        raise web.HTTPForbidden(reason="not admitted")
    active = request.get(active_session_key)
    name = seat.call_name or (active.user.display_name if seat.role == "clinician" and active else "")
    return await run(request, "call", call_protocol.MESSAGE_BYTES, services.calls.inbox(seat),
                     lambda socket: call_protocol.Connection(
                         seat=seat, name=name, calls=services.calls, waiting_room=services.waiting_room,
                         ice=services.ice_servers, send=sender(socket),
                         translate=functools.partial(user_message, request),
                         client_kind=client_kind(request.headers.get("User-Agent", ""))))
