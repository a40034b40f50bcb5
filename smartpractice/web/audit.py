"""Reading the audit log: the practice's own for its admins, all of it for the operator."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from aiohttp import web

from smartpractice.audit import AuditFilter
from smartpractice.keys import services_key
from smartpractice.times import DEFAULT_ZONE
from smartpractice.web.audit_labels import ACTIONS, OBJECTS
from smartpractice.web.responses import render
from smartpractice.web.session import reader_zone, require_admin, require_operator

# What audit.record is given: identifiers from the code.
ACTION = re.compile(r"[a-z_]{1,40}")


def _day(typed: str) -> datetime | None:
    try:
        return datetime.combine(date.fromisoformat(typed.strip()), datetime.min.time(), UTC)
    except ValueError:
        return None


def _filter(request: web.Request, practice_id: int | None) -> tuple[AuditFilter, dict]:
    """The filter from the query; a date or action that does not parse is left out and shown empty."""
    query = request.query
    action = query.get("action", "")
    action = action if ACTION.fullmatch(action) else ""
    since, until = _day(query.get("from", "")[:10]), _day(query.get("to", "")[:10])
    shown = {"action": action, "from": query.get("from", "")[:10] if since else "",
             "to": query.get("to", "")[:10] if until else ""}
    # "to" names a day, so the whole of it is included.
    where = AuditFilter(practice_id, action, since, until + timedelta(days=1) if until else None)
    return where, shown


def _labels(zone: str) -> dict:
    """What the page needs to show entries to a person: labels for the stored identifiers
    (an unknown one is shown as stored) and the zone for the times."""
    return {"action_labels": ACTIONS, "object_labels": OBJECTS, "zone": zone or DEFAULT_ZONE}


def _csv(body: str, name: str) -> web.Response:
    response = web.Response(text=body, content_type="text/csv", charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


async def practice_log(request: web.Request) -> web.StreamResponse:
    active, membership = await require_admin(request, request.match_info["slug"])
    audit = request.app[services_key].audit
    where, shown = _filter(request, membership.practice.id)
    # The practice's own zone: an admin of several reads each log in its practice's time.
    zone = (await request.app[services_key].consultations.policy(membership.practice.id)).time_zone
    context = {"practice": membership.practice, "entries": await audit.entries(where), "filters": shown,
               "actions": await audit.actions(membership.practice.id), **_labels(zone),
               "csv_url": request.app.router["audit_csv"].url_for(slug=membership.practice.slug)}
    return render(request, "audit.html", context)


async def practice_csv(request: web.Request) -> web.StreamResponse:
    _, membership = await require_admin(request, request.match_info["slug"])
    where, _ = _filter(request, membership.practice.id)
    return _csv(await request.app[services_key].audit.csv(where), f"audit-{membership.practice.slug}.csv")


async def operator_log(request: web.Request) -> web.StreamResponse:
    active = require_operator(request)
    audit = request.app[services_key].audit
    where, shown = _filter(request, None)
    context = {"practice": None, "entries": await audit.entries(where), "filters": shown,
               "actions": await audit.actions(None), **_labels(await reader_zone(request, active)),
               "csv_url": request.app.router["operator_audit_csv"].url_for()}
    return render(request, "audit.html", context)


async def operator_csv(request: web.Request) -> web.StreamResponse:
    require_operator(request)
    where, _ = _filter(request, None)
    return _csv(await request.app[services_key].audit.csv(where), "audit.csv")
