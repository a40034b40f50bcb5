"""Second factor: TOTP (RFC 6238, through pyotp) with ten single-use recovery codes.

Codes are accepted from one 30-second step before to one after the server's time, and a
step is never accepted twice for the same user (RFC 6238 §5.2). Recovery codes carry
about 50 bits and are stored as HMACs under the server secret, like TANs. Failed codes
count toward a lock per account, as failed passwords do.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import pyotp
import segno
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smartpractice.accounts.passwords import GENERATED_ALPHABET
from smartpractice.accounts.throttle import (
    ADDRESS_POLICY,
    SECOND_FACTOR_POLICY,
    LoginThrottle,
    minutes_left,
)
from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import N_, NP_
from smartpractice.mail.outbox import Outbox
from smartpractice.storage import second_factors as store
from smartpractice.storage.practices import staff_practice_ids
from smartpractice.storage.users import User

ISSUER = "smartpractice"
VALID_WINDOW = 1
RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_LENGTH = 10


@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str
    qr_data_uri: str

    @property
    def grouped_secret(self) -> str:
        """The secret in groups of four, for typing into an app by hand."""
        return " ".join(self.secret[i:i + 4] for i in range(0, len(self.secret), 4))


@dataclass(frozen=True)
class FactorStatus:
    enrolled: bool
    recovery_codes_left: int


def normalize_code(typed: str) -> str:
    return "".join(character for character in typed.lower() if character.isalnum())


def new_recovery_code() -> str:
    code = "".join(secrets.choice(GENERATED_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
    return f"{code[:5]}-{code[5:]}"


class SecondFactors:
    def __init__(
        self, *, engine: AsyncEngine, clock: Clock, throttle: LoginThrottle, outbox: Outbox, links, audit: Audit,
        secret: str,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._throttle = throttle
        self._outbox = outbox
        self._links = links
        self._audit = audit
        self._secret = secret.encode()

    def _code_hmac(self, code: str) -> str:
        return hmac.new(self._secret, normalize_code(code).encode(), hashlib.sha256).hexdigest()

    async def status(self, user_id: int) -> FactorStatus:
        async with self._engine.connect() as conn:
            factor = await store.factor_of(conn, user_id)
            left = await store.unused_recovery_codes(conn, user_id)
        return FactorStatus(factor is not None and factor.secret is not None, left)

    async def is_enrolled(self, user_id: int) -> bool:
        return (await self.status(user_id)).enrolled

    async def pending(self, user: User) -> Enrolment | None:
        async with self._engine.connect() as conn:
            factor = await store.factor_of(conn, user.id)
        if factor is None or factor.pending_secret is None:
            return None
        return self._enrolment(user, factor.pending_secret)

    async def begin(self, user: User) -> Enrolment:
        """A new secret to enrol; the current one (if any) works until the new one is confirmed."""
        secret = pyotp.random_base32()
        async with self._engine.begin() as conn:
            await store.set_pending(conn, user.id, secret)
        return self._enrolment(user, secret)

    def _enrolment(self, user: User, secret: str) -> Enrolment:
        uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=ISSUER)
        return Enrolment(secret, uri, segno.make(uri, error="m").svg_data_uri(scale=5, border=2))

    async def confirm(self, user: User, code: str, *, address: str) -> list[str]:
        """Make the pending secret the user's factor once a code from it is right.

        Returns the new recovery codes, to be shown once; the earlier ones stop working.
        """
        await self._admit(user, address)
        async with self._engine.begin() as conn:
            factor = await store.factor_of(conn, user.id)
            if factor is None or factor.pending_secret is None:
                raise UserError("enrolment_missing", N_("Please start setting up the authenticator app again."))
            step = self._matching_step(factor.pending_secret, code)
            if step is None:
                wrong = _wrong_code()
            else:
                wrong = None
                renewed = factor.secret is not None
                await store.activate_pending(conn, user.id, now=self._clock.now(), step=step)
                codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
                await store.replace_recovery_codes(conn, user.id, [self._code_hmac(c) for c in codes], self._clock.now())
                await self._audit.record_in_each(
                    conn, await staff_practice_ids(conn, user.id), user.id,
                    "second_factor_renewed" if renewed else "second_factor_enrolled", "user", user.id,
                )
                await self.notify(conn, user, "second_factor_renewed" if renewed else "second_factor_enrolled")
                await self._succeeded(conn, user, address)
        if wrong is not None:
            raise wrong
        return codes

    async def verify(self, user: User, code: str, *, address: str) -> str:
        """Check a TOTP or recovery code of an enrolled user; returns "totp" or "recovery"."""
        await self._admit(user, address)
        async with self._engine.begin() as conn:
            method = await self._check(conn, user, code)
            if method is not None:
                await self._succeeded(conn, user, address)
                if method == "recovery":
                    await self._audit.record_in_each(
                        conn, await staff_practice_ids(conn, user.id), user.id, "recovery_code_used", "user", user.id
                    )
        if method is None:
            async with self._engine.begin() as conn:
                await self._audit.record_in_each(
                    conn, await staff_practice_ids(conn, user.id), user.id, "login_failed", "second_factor", user.id
                )
            raise _wrong_code()
        return method

    async def _check(self, conn: AsyncConnection, user: User, code: str) -> str | None:
        factor = await store.factor_of(conn, user.id)
        if factor is None or factor.secret is None:
            return None
        typed = normalize_code(code)
        if len(typed) == RECOVERY_CODE_LENGTH:
            used = await store.use_recovery_code(conn, user.id, self._code_hmac(typed), self._clock.now())
            return "recovery" if used else None
        step = self._matching_step(factor.secret, typed)
        if step is not None and await store.use_step(conn, user.id, step):
            return "totp"
        return None

    def _matching_step(self, secret: str, code: str) -> int | None:
        typed = normalize_code(code)
        if len(typed) != 6 or not typed.isdigit():
            return None
        totp = pyotp.TOTP(secret)
        current = totp.timecode(self._clock.now())
        for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
            if hmac.compare_digest(totp.generate_otp(step), typed):
                return step
        return None

    async def _admit(self, user: User, address: str) -> None:
        now = self._clock.now()
        limits = [
            ("2fa:" + self._throttle.account_key(user.id, user.username), SECOND_FACTOR_POLICY),
            ("2fa:" + self._throttle.address_key(address), ADDRESS_POLICY),
        ]
        async with self._engine.begin() as conn:
            locked_until = await self._throttle.admit(conn, limits, now)
        if locked_until is not None:
            raise UserError(
                "second_factor_locked",
                NP_("Too many wrong codes. Please try again in %(minutes)d minute.",
                    "Too many wrong codes. Please try again in %(minutes)d minutes."),
                number="minutes", minutes=minutes_left(locked_until, now),
            )

    async def _succeeded(self, conn: AsyncConnection, user: User, address: str) -> None:
        await self._throttle.succeeded(
            conn, "2fa:" + self._throttle.account_key(user.id, user.username),
            "2fa:" + self._throttle.address_key(address),
        )

    async def notify(self, conn: AsyncConnection, user: User, change: str) -> None:
        """Tell the owner of a change to how they log in (BSI TR-03161)."""
        await self._outbox.enqueue(
            conn,
            kind="credentials_changed",
            to=user.email,
            language=user.mail_language,
            context={"name": user.display_name, "change": change, "link": self._links.url("password_reset")},
        )


def _wrong_code() -> UserError:
    return UserError("second_factor_wrong", N_("This code is not correct, or it was already used. Please enter the current code from your app."))
