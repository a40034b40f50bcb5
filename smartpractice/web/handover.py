"""TANs the clinician passes on by phone (the practice's setting "clinician"), carried
from the form's POST to the page it redirects to, and shown there once.

They cannot go into the redirect's URL, and the server keeps only their HMAC; so they
travel in a signed, HttpOnly cookie that lives five minutes and is deleted by the page
that shows them.
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from smartpractice.keys import secret_key
from smartpractice.onboarding.invitations import NewInvitation
from smartpractice.onboarding.tans import normalize_tan
from smartpractice.web.cookies import HANDOVER, clear_cookie, read_cookie, set_cookie

MAX_AGE_SECONDS = 300


def _signature(request: web.Request, payload: str) -> str:
    return hmac.new(request.app[secret_key].encode(), f"handover:{payload}".encode(), hashlib.sha256).hexdigest()[:32]


def hand_over(request: web.Request, response: web.StreamResponse, created: list[NewInvitation]) -> None:
    """Give the page behind the redirect the TANs that did not go by mail."""
    pairs = [f"{new.invitation.id}-{normalize_tan(new.tan)}" for new in created if not new.tan_in_mail]
    if pairs:
        payload = ".".join(pairs)
        set_cookie(request, response, HANDOVER, f"{payload}~{_signature(request, payload)}", max_age=MAX_AGE_SECONDS)


def handed_over(request: web.Request) -> dict[int, str]:
    """The TANs handed over, by invitation id, as printed (`1234 5678`)."""
    payload, _, signature = (read_cookie(request, HANDOVER) or "").partition("~")
    if not payload or not hmac.compare_digest(signature, _signature(request, payload)):
        return {}
    tans = {}
    for pair in payload.split("."):
        invitation_id, _, tan = pair.partition("-")
        if invitation_id.isdigit() and tan.isdigit():
            tans[int(invitation_id)] = f"{tan[:4]} {tan[4:]}"
    return tans


def shown(request: web.Request, response: web.StreamResponse) -> None:
    """The page showed them: the browser forgets them."""
    if read_cookie(request, HANDOVER):
        clear_cookie(request, response, HANDOVER)
