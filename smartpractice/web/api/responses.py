"""JSON answers of the API."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC, e.g. `2026-03-01T09:30:00Z`."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def created(request: web.Request, route: str, new_id: int, payload: dict) -> web.Response:
    """201 with the new resource and where to find it."""
    location = request.app.router[route].url_for(id=str(new_id))
    return web.json_response(payload, status=201, headers={"Location": str(location)})
