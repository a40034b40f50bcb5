"""The contact form for practices that want an offer instead of signing up themselves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.accounts.throttle import LoginThrottle, ThrottlePolicy
from smartpractice.accounts.users import EMAIL
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import DEFAULT_LANGUAGE, N_
from smartpractice.mail.outbox import Outbox
from smartpractice.names import tidy
from smartpractice.storage import offers as store
from smartpractice.storage.offers import OfferRequest
from smartpractice.submissions import Once, claim, settle

# Each request may mail the operator: a few per hour from one connection is plenty.
CLIENT_POLICY = ThrottlePolicy(max_attempts=5, window=timedelta(hours=1), lockout=timedelta(hours=1))
LIMITS = {"name": 200, "practice_name": 200, "email": 254, "phone": 50, "message": 4000}


@dataclass(frozen=True)
class Enquiry:
    name: str
    practice_name: str
    email: str
    phone: str
    message: str


class OfferRequests:
    def __init__(
        self, *, engine: AsyncEngine, clock: Clock, outbox: Outbox, throttle: LoginThrottle, operator_email: str
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._outbox = outbox
        self._throttle = throttle
        self._operator_email = operator_email

    async def submit(self, enquiry: Enquiry, *, address: str, once: Once | None = None) -> None:
        """The form's `once` token makes a second sending raise AlreadySubmitted: one request, one mail."""
        values = {name: getattr(enquiry, name).strip() for name in LIMITS}
        values.update(name=tidy(values["name"]), practice_name=tidy(values["practice_name"]))
        if not values["name"] or not values["practice_name"]:
            raise UserError("offer_name_missing", N_("Please give your name and the practice's name."))
        if any(len(values[name]) > limit for name, limit in LIMITS.items()):
            raise UserError("offer_too_long", N_("One of the fields is too long."))
        if not EMAIL.match(values["email"]):
            raise UserError("email_invalid", N_("Please enter a valid email address."))
        now = self._clock.now()
        async with self._engine.begin() as conn:
            limits = [(self._throttle.address_key(address) + ":offer", CLIENT_POLICY)]
            if await self._throttle.admit(conn, limits, now) is not None:
                raise UserError("offer_throttled", N_("Too many requests from your connection. Please try again in an hour."))
        async with self._engine.begin() as conn:
            await claim(conn, once, now)
            request_id = await store.insert_request(conn, now=now, **values)
            await settle(conn, once, "offer_request", request_id)
            if self._operator_email:
                await self._outbox.enqueue(
                    conn, kind="offer_request", to=self._operator_email, language=DEFAULT_LANGUAGE,
                    context={"number": request_id, **values},
                )

    async def recent(self, limit: int = 50) -> list[OfferRequest]:
        async with self._engine.connect() as conn:
            return await store.recent_requests(conn, limit)
