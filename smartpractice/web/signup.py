"""Public pages for practices: pricing, signing up, and asking for an offer."""

from __future__ import annotations

from aiohttp import web

from smartpractice.errors import UserError
from smartpractice.keys import language_key, services_key
from smartpractice.onboarding.signup import PracticeApplication
from smartpractice.practices.offers import LIMITS as ENQUIRY_FIELDS
from smartpractice.practices.offers import Enquiry
from smartpractice.practices.plans import KIND_LABELS
from smartpractice.submissions import AlreadySubmitted, Once, new_token
from smartpractice.web.client import client_address
from smartpractice.web.forms import field, read_form
from smartpractice.web.responses import render, user_message

SIGNUP_FIELDS = ("practice_name", "kind", "address", "contact", "admin_name", "username", "email")
EXAMPLE_SEATS = (1, 3, 5, 10)


def _plans(request: web.Request):
    return request.app[services_key].plans.price_table


async def pricing(request: web.Request) -> web.StreamResponse:
    context = {"plans": _plans(request), "labels": KIND_LABELS, "examples": EXAMPLE_SEATS}
    return render(request, "pricing.html", context)


def _signup_page(request, form: dict, *, consent: bool = False, error: str | None = None, status: int = 200):
    form.setdefault("treats_patients", "")
    form.setdefault("form_token", new_token())
    context = {"plans": _plans(request), "labels": KIND_LABELS, "form": form, "consent": consent, "error": error}
    return render(request, "signup.html", context, status=status)


async def signup_form(request: web.Request) -> web.StreamResponse:
    form = dict.fromkeys(SIGNUP_FIELDS, "")
    form["kind"] = request.query.get("kind", "")[:32]
    return _signup_page(request, form)


async def signup(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    typed = {name: field(form, name, 500) for name in SIGNUP_FIELDS}
    consent = field(form, "consent", 8) == "yes"
    treats = field(form, "treats_patients", 8)
    application = PracticeApplication(
        password=field(form, "password", 4096), password_repeat=field(form, "password_repeat", 4096),
        consent=consent, language=request[language_key], **typed,
        treats_patients={"yes": True, "no": False}.get(treats),
    )
    typed["treats_patients"] = treats if treats in ("yes", "no") else ""
    token = field(form, "form_token", 64)
    try:
        # Anonymous: the token alone, random and unguessable, tells one sending from another.
        await request.app[services_key].signups.sign_up(application, address=client_address(request),
                                                        once=Once("signup", token))
    except AlreadySubmitted:
        pass  # a reload or a second click: the first sending signed up and mailed
    except UserError as error:
        typed["form_token"] = new_token() if error.code == "form_outdated" else token
        return _signup_page(request, typed, consent=consent, error=user_message(request, error), status=400)
    return render(request, "signup_done.html", {"email": typed["email"].strip()})


def _contact_page(request, form: dict, *, error: str | None = None, sent: bool = False, status: int = 200,
                  form_token: str | None = None):
    context = {"form": form, "error": error, "sent": sent, "form_token": form_token or new_token()}
    return render(request, "contact.html", context, status=status)


async def contact_form(request: web.Request) -> web.StreamResponse:
    return _contact_page(request, dict.fromkeys(ENQUIRY_FIELDS, ""))


async def contact(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    typed = {name: field(form, name, limit + 100) for name, limit in ENQUIRY_FIELDS.items()}
    token = field(form, "form_token", 64)
    # Anonymous: the token alone, random and unguessable, tells one sending from another.
    once = Once("contact", token)
    try:
        await request.app[services_key].offer_requests.submit(Enquiry(**typed), address=client_address(request), once=once)
    except AlreadySubmitted:
        pass  # a reload or a second click: the first sending was stored and mailed
    except UserError as error:
        kept = None if error.code == "form_outdated" else token
        return _contact_page(request, typed, error=user_message(request, error), status=400, form_token=kept)
    return _contact_page(request, dict.fromkeys(ENQUIRY_FIELDS, ""), sent=True)
