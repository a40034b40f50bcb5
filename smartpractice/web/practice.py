"""The site's root: the public start page for visitors; for a logged-in user their
practices and a dashboard per role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from smartpractice.keys import active_session_key, services_key
from smartpractice.scheduling.consultations import Consultation
from smartpractice.web.responses import render
from smartpractice.web.session import require_login, require_membership


async def home(request: web.Request) -> web.StreamResponse:
    """Visitors: what this is and the ways in. Logged in, one practice: straight to its
    dashboard; several: a choice; none: an explanation."""
    if request.get(active_session_key) is None:
        return render(request, "start.html", {"code": "", "error": None})
    active = require_login(request)
    memberships = await request.app[services_key].practices.memberships_of(active.user.id)
    if not memberships and active.user.is_operator and "changed" not in request.query:
        raise web.HTTPSeeOther(request.app.router["operator"].url_for())
    if len(memberships) == 1 and "changed" not in request.query:
        target = request.app.router["dashboard"].url_for(slug=memberships[0].practice.slug)
        raise web.HTTPSeeOther(target)
    context = {"memberships": memberships, "changed": request.query.get("changed")}
    return render(request, "practices.html", context)


@dataclass(frozen=True)
class Upcoming:
    consultation: Consultation
    opens_at: datetime
    open: bool


async def dashboard(request: web.Request) -> web.StreamResponse:
    active, membership = await require_membership(request, request.match_info["slug"])
    context: dict = {"practice": membership.practice, "role": membership.role,
                     "treats_patients": membership.is_clinician}
    if membership.role == "patient":
        services = request.app[services_key]
        policy = await services.consultations.policy(membership.practice.id)
        window = timedelta(minutes=policy.join_window_minutes)
        now = services.clock.now()
        context["upcoming"] = [
            Upcoming(c, c.starts_at - window, now >= c.starts_at - window)
            for c in await services.consultations.upcoming_for_patient(membership.practice.id, active.user.id)
        ]
        context["zone"] = policy.time_zone
    return render(request, f"dashboard_{membership.role}.html", context)
