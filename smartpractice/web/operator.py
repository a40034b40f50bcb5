"""The operator's pages: every practice, suspension, plans, and requests for offers."""

from __future__ import annotations

from aiohttp import web

from smartpractice.errors import UserError
from smartpractice.keys import services_key
from smartpractice.practices.plans import KIND_LABELS
from smartpractice.web.forms import field, read_form
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.session import require_operator


def _practice_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 9:
        raise web.HTTPNotFound()
    return int(raw)


async def _page(request: web.Request, *, error: str | None = None, status: int = 200) -> web.Response:
    services = request.app[services_key]
    context = {
        "practices": await services.operator.practices(),
        "offers": await services.offer_requests.recent(),
        "plans": services.plans.price_table,
        "labels": KIND_LABELS,
        "error": error,
    }
    return render(request, "operator.html", context, status=status)


async def overview(request: web.Request) -> web.StreamResponse:
    require_operator(request)
    return await _page(request)


async def suspend(request: web.Request) -> web.StreamResponse:
    active = require_operator(request)
    if not await request.app[services_key].operator.suspend(_practice_id(request), actor=active.user.id):
        raise web.HTTPNotFound()
    return see_other(request.app.router["operator"].url_for())


async def reactivate(request: web.Request) -> web.StreamResponse:
    active = require_operator(request)
    if not await request.app[services_key].operator.reactivate(_practice_id(request), actor=active.user.id):
        raise web.HTTPNotFound()
    return see_other(request.app.router["operator"].url_for())


async def set_plan(request: web.Request) -> web.StreamResponse:
    active = require_operator(request)
    practice_id = _practice_id(request)
    services = request.app[services_key]
    if not any(practice.id == practice_id for practice in await services.operator.practices()):
        raise web.HTTPNotFound()
    form = await read_form(request)
    seats, max_seats = field(form, "seats", 10).strip(), field(form, "max_seats", 10).strip()
    try:
        await services.plans.set_by_operator(
            practice_id, kind=field(form, "kind", 32),
            seats=int(seats) if seats.isdigit() else 0,
            max_seats=None if not max_seats else (int(max_seats) if max_seats.isdigit() else 0),
            actor=active.user.id,
        )
    except UserError as error:
        message = user_message(request, error)
        return await _page(request, error=message, status=400)
    return see_other(request.app.router["operator"].url_for())
