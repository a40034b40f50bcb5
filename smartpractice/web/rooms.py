"""The waiting room: its page, the waiting person's socket and the practice's live list."""

from __future__ import annotations

import functools

from aiohttp import web

from smartpractice.errors import UserError
from smartpractice.keys import (
    active_session_key,
    guest_session_key,
    services_key,
    settings_key,
)
from smartpractice.rooms import waiting_protocol
from smartpractice.rooms.state import RoomsUnavailable
from smartpractice.rooms.waiting_room import (
    NotParticipant,
    Seat,
    consultation_channel,
    person_channel,
    practice_channel,
)
from smartpractice.web.guest import way_back
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.session import require_clinician
from smartpractice.web.sockets import check_origin, run, sender


async def seat_of(request: web.Request) -> Seat:
    active, guest = request.get(active_session_key), request.get(guest_session_key)
    if active is None and guest is None:
        if request.headers.get("Upgrade", "").lower() == "websocket" or request.method != "GET":
            raise web.HTTPUnauthorized()
        # A TAN guest whose session lapsed goes back to their invitation's TAN page.
        back = await way_back(request, int(request.match_info["id"]))
        raise web.HTTPSeeOther(back or request.app.router["login"].url_for().with_query(next=request.path))
    try:
        return await request.app[services_key].waiting_room.seat(
            int(request.match_info["id"]),
            user_id=active.user.id if active else None,
            invitation_id=guest.invitation_id if guest else None,
        )
    except NotParticipant:
        raise web.HTTPNotFound() from None


def unavailable(request: web.Request, error: RoomsUnavailable) -> web.StreamResponse:
    """The room state (Redis) does not answer: a page that says so, 503."""
    return render(request, "room_closed.html", {"message": user_message(request, error)}, status=error.status)


async def waiting_page(request: web.Request) -> web.StreamResponse:
    seat = await seat_of(request)
    services = request.app[services_key]
    call = request.app.router["call"].url_for(id=str(seat.consultation.id))
    try:
        admitted = await services.waiting_room.is_admitted(seat)
    except RoomsUnavailable as error:
        return unavailable(request, error)
    if admitted:
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
        "alive_seconds": alive_seconds(request),
    }
    return render(request, "waiting.html", context)


def alive_seconds(request: web.Request) -> int:
    """How often an open waiting or call page beats: well inside the idle timeout, so that
    its session stays alive."""
    return max(60, min(600, request.app[settings_key].session_idle_minutes * 60 // 3))


async def alive(request: web.Request) -> web.StreamResponse:
    """The open waiting or call page's beat: resuming the session (the middleware) marks it as in
    use, so it does not run out while someone waits. 401 once it has ended."""
    await seat_of(request)
    return web.Response(status=204)


async def participant_socket(request: web.Request) -> web.StreamResponse:
    """A waiting person's line (rooms/waiting_protocol.py)."""
    check_origin(request)
    seat = await seat_of(request)
    services = request.app[services_key]
    channels = (person_channel(seat.consultation.id, seat.key), consultation_channel(seat.consultation.id))
    return await run(request, "waiting_patient", waiting_protocol.MESSAGE_BYTES,
                     services.waiting_room.state.subscribe(*channels),
                     lambda socket: waiting_protocol.WaitingConnection(
                         seat=seat, room=services.waiting_room, consultations=services.consultations,
                         send=sender(socket), translate=functools.partial(user_message, request)))


async def staff_socket(request: web.Request) -> web.StreamResponse:
    """The practice's live waiting list for its staff (rooms/waiting_protocol.py)."""
    check_origin(request)
    if request.get(active_session_key) is None:
        raise web.HTTPUnauthorized()
    active, membership = await require_clinician(request, request.match_info["slug"])
    services = request.app[services_key]
    news = services.waiting_room.state.subscribe(practice_channel(membership.practice.id))
    return await run(request, "waiting_staff", waiting_protocol.MESSAGE_BYTES, news,
                     lambda socket: waiting_protocol.PracticeConnection(
                         practice_id=membership.practice.id, actor=active.user.id, room=services.waiting_room,
                         consultations=services.consultations, send=sender(socket),
                         translate=functools.partial(user_message, request)))


async def end(request: web.Request) -> web.StreamResponse:
    active, membership = await require_clinician(request, request.match_info["slug"])
    consultation_id = int(request.match_info["id"])
    if not await request.app[services_key].waiting_room.end(membership.practice.id, consultation_id,
                                                             actor=active.user.id):
        raise web.HTTPNotFound()
    return see_other(request.app.router["consultation"].url_for(slug=membership.practice.slug, id=str(consultation_id)))
