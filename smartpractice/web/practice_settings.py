"""The admin's pages for the practice's settings and for its plan and seats."""

from __future__ import annotations

from dataclasses import asdict

from aiohttp import web

from smartpractice.errors import UserError
from smartpractice.keys import services_key
from smartpractice.practices.plans import KIND_LABELS
from smartpractice.practices.settings import NUMBER_FIELDS, RELAY_POLICIES, TEXT_FIELDS
from smartpractice.web.forms import field, read_form
from smartpractice.web.personal_data import json_download
from smartpractice.web.responses import render, see_other, user_message
from smartpractice.web.session import require_admin


def _as_form(settings) -> dict:
    values = asdict(settings)
    values["retention_days"] = "" if settings.retention_days is None else str(settings.retention_days)
    return {name: str(value) if not isinstance(value, bool) else value for name, value in values.items()}


async def _settings_page(request, membership, form: dict, *, error: str | None = None, status: int = 200):
    configuration = request.app[services_key].practice_configuration
    context = {
        "practice": membership.practice, "form": form, "error": error, "saved": request.query.get("saved") == "1",
        "time_zones": configuration.time_zones, "relay_policies": RELAY_POLICIES,
        "retention_ceiling": configuration.retention_ceiling,
    }
    return render(request, "practice_settings.html", context, status=status)


async def settings_page(request: web.Request) -> web.StreamResponse:
    _, membership = await require_admin(request, request.match_info["slug"])
    current = await request.app[services_key].practice_configuration.get(membership.practice.id)
    return await _settings_page(request, membership, _as_form(current))


async def save_settings(request: web.Request) -> web.StreamResponse:
    active, membership = await require_admin(request, request.match_info["slug"])
    configuration = request.app[services_key].practice_configuration
    form = await read_form(request)
    typed = {name: field(form, name, 500) for name in (*TEXT_FIELDS, *NUMBER_FIELDS)}
    self_registration = field(form, "self_registration", 8) == "on"
    try:
        current = await configuration.get(membership.practice.id)
        await configuration.save(
            membership.practice.id, configuration.parse(current, typed, self_registration), actor=active.user.id
        )
    except UserError as error:
        shown = {**typed, "self_registration": self_registration}
        return await _settings_page(request, membership, shown, error=user_message(request, error), status=400)
    return see_other(request.app.router["practice_settings"].url_for(slug=membership.practice.slug).with_query(saved="1"))


async def export_practice(request: web.Request) -> web.StreamResponse:
    """Everything the service holds for the practice, as JSON (docs/privacy-operations.md)."""
    active, membership = await require_admin(request, request.match_info["slug"])
    practice = membership.practice
    data = await request.app[services_key].practice_export.export(practice, actor=active.user.id)
    return json_download(data, f"practice-{practice.slug}")


async def _plan_page(request, membership, *, error: str | None = None, status: int = 200):
    usage = await request.app[services_key].plans.usage(membership.practice.id)
    context = {"practice": membership.practice, "usage": usage, "error": error,
               "kind_label": KIND_LABELS.get(usage.kind), "saved": request.query.get("saved") == "1"}
    return render(request, "plan.html", context, status=status)


async def plan_page(request: web.Request) -> web.StreamResponse:
    _, membership = await require_admin(request, request.match_info["slug"])
    return await _plan_page(request, membership)


async def book_seats(request: web.Request) -> web.StreamResponse:
    active, membership = await require_admin(request, request.match_info["slug"])
    form = await read_form(request)
    typed = field(form, "seats", 10).strip()
    try:
        seats = int(typed) if typed.isdigit() else 0
        await request.app[services_key].plans.book_seats(membership.practice, seats, actor=active.user.id)
    except UserError as error:
        return await _plan_page(request, membership, error=user_message(request, error), status=400)
    return see_other(request.app.router["plan"].url_for(slug=membership.practice.slug).with_query(saved="1"))
