"""TAN invitations sent by the practice software."""

from __future__ import annotations

from aiohttp import web

from smartpractice.i18n import LANGUAGES
from smartpractice.keys import services_key
from smartpractice.onboarding.invitations import Invitee
from smartpractice.submissions import AlreadySubmitted, KeyReused
from smartpractice.web.api.body import Text, read_body
from smartpractice.web.api.idempotency import idempotency, key_reused, replayed
from smartpractice.web.api.request import api_practice, path_id
from smartpractice.web.api.responses import created, timestamp

FIELDS = (
    Text("email", 254, "Where the invitation mail goes.", format="email"),
    Text("display_name", 200, "Name of the invited person, shown to the practice.", required=False,
         min_length=0),
    Text("language", 2, "Language of the invitation mail.", required=False, choices=LANGUAGES),
)


def invitation_json(view) -> dict:
    return {
        "id": view.id,
        "email": view.email,
        "display_name": view.display_name,
        "language": view.language,
        "state": view.state,
        "created_at": timestamp(view.created_at),
        "expires_at": timestamp(view.expires_at),
        "code": view.code,
        "consultation_id": view.consultation_id,
    }


async def create(request: web.Request) -> web.StreamResponse:
    """An invitation without a planned time: an instant consultation without a clinician,
    so every clinician of the practice sees the guest arrive in the waiting room."""
    body = await read_body(request, FIELDS)
    services = request.app[services_key]
    try:
        new = await services.consultations.invite_now(
            api_practice(request), None,
            Invitee.parse(body["email"], body.get("display_name", ""), body.get("language", "de")),
            once=idempotency(request, body),
        )
    except KeyReused:
        raise key_reused() from None
    except AlreadySubmitted as first:
        # The TAN (if it was returned) is not kept, so the replay cannot show it again;
        # the practice can send the invitation again for a new one.
        view = await services.invitations.get(api_practice(request).id, first.object_id)
        return replayed(created(request, "api_invitation", first.object_id, invitation_json(view)))
    payload = invitation_json(new.invitation)
    # A TAN that went out by mail stays there: returning it would put both factors in
    # one more place. Otherwise the practice software must pass it on itself.
    if not new.tan_in_mail:
        payload["tan"] = new.tan
    return created(request, "api_invitation", new.invitation.id, payload)


async def invitation(request: web.Request) -> web.StreamResponse:
    found = await request.app[services_key].invitations.get(api_practice(request).id, path_id(request))
    if found is None:
        raise web.HTTPNotFound()
    return web.json_response(invitation_json(found))


async def revoke(request: web.Request) -> web.StreamResponse:
    found = await request.app[services_key].invitations.revoke(api_practice(request).id, path_id(request))
    if found is None:
        raise web.HTTPNotFound()
    return web.json_response(invitation_json(found))
