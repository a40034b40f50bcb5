"""What handlers ask of the request: who is logged in, and in which practice."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from smartpractice.accounts.sessions import ActiveSession
from smartpractice.keys import active_session_key, services_key
from smartpractice.logs import practice_id_key
from smartpractice.practices.practices import Membership
from smartpractice.times import DEFAULT_ZONE


def require_login(request: web.Request) -> ActiveSession:
    active = request.get(active_session_key)
    if active is None:
        login = request.app.router["login"].url_for()
        if request.method == "GET":
            login = login.with_query(next=request.path)
        raise web.HTTPSeeOther(login)
    return active


async def require_membership(request: web.Request, slug: str) -> tuple[ActiveSession, Membership]:
    """The user's membership in the practice `slug`; 404 for practices they do not belong to."""
    active = require_login(request)
    membership = active.membership_in(slug)
    if membership is None:
        raise web.HTTPNotFound()
    request[practice_id_key] = membership.practice.id
    if membership.practice.suspended:
        raise web.HTTPForbidden(reason="practice suspended")
    return active, membership


def safe_next(target: object) -> str | None:
    """Only a path on this site, so `?next=` cannot send anyone to another one. Anything
    else (a file sent as the field, a NUL, a path longer than 500) is dropped, and the
    login it came with goes on without it.

    Browsers drop tabs and line breaks from a Location and read a backslash as a slash,
    so `/\t/evil.example` or `/\\evil.example` would lead off the site: none of those, no
    control character at all (aiohttp refuses them in a header, after the login is done),
    and nothing that parses with a scheme or a host."""
    if not isinstance(target, str) or len(target) > 500 or not target.startswith("/") or "\\" in target:
        return None
    if any(ord(c) < 0x21 or 0x7F <= ord(c) <= 0x9F or c.isspace() for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return None
    return target




async def require_staff(request: web.Request, slug: str) -> tuple[ActiveSession, Membership]:
    """Like require_membership, for pages of clinicians and admins; patients get 404."""
    active, membership = await require_membership(request, slug)
    if not membership.is_staff:
        raise web.HTTPNotFound()
    return active, membership


async def require_clinician(request: web.Request, slug: str) -> tuple[ActiveSession, Membership]:
    """Like require_membership, for what only those who hold consultations do (planning
    one, the waiting room): clinicians and admins who treat patients; anyone else gets 404."""
    active, membership = await require_membership(request, slug)
    if not membership.is_clinician:
        raise web.HTTPNotFound()
    return active, membership


async def require_admin(request: web.Request, slug: str) -> tuple[ActiveSession, Membership]:
    """Like require_membership, for the practice's administration; everyone else gets 404."""
    active, membership = await require_membership(request, slug)
    if not membership.is_admin:
        raise web.HTTPNotFound()
    return active, membership


def require_operator(request: web.Request) -> ActiveSession:
    """The site's operator; anyone else gets 404, as if the page did not exist."""
    active = require_login(request)
    if not active.user.is_operator:
        raise web.HTTPNotFound()
    return active


async def reader_zone(request: web.Request, active: ActiveSession) -> str:
    """The zone a person reads times in: their practice's (the first of several), never UTC."""
    if not active.memberships:
        return DEFAULT_ZONE
    return (await request.app[services_key].consultations.policy(active.memberships[0].practice.id)).time_zone
