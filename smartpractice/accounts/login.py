"""Password login with the same answer and timing for unknown users and wrong passwords."""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.accounts.devices import DeviceCookies
from smartpractice.accounts.passwords import Passwords
from smartpractice.accounts.sessions import Sessions
from smartpractice.accounts.throttle import (
    ACCOUNT_BACKOFF,
    ADDRESS_POLICY,
    PAIR_BACKOFF,
    Backoff,
    LoginThrottle,
)
from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.errors import Busy, UserError
from smartpractice.i18n import N_, NP_
from smartpractice.storage import login_sessions as session_store
from smartpractice.storage import practices as practice_store
from smartpractice.storage import second_factors as factor_store
from smartpractice.storage import users as user_store
from smartpractice.storage.users import User


class LoginFailed(UserError):
    status = 401


def _wrong() -> LoginFailed:
    return LoginFailed("login_failed", N_("The user name, email address or password is wrong."))


def _locked(remaining: timedelta) -> LoginFailed:
    seconds = max(1, math.ceil(remaining.total_seconds()))
    if seconds < 60:
        return LoginFailed(
            "login_wait",
            NP_("Too many failed attempts. Please wait %(seconds)d second, then log in again.",
                "Too many failed attempts. Please wait %(seconds)d seconds, then log in again."),
            number="seconds", seconds=seconds,
        )
    return LoginFailed(
        "login_locked",
        NP_("Too many failed attempts. Please try again in %(minutes)d minute.",
            "Too many failed attempts. Please try again in %(minutes)d minutes."),
        number="minutes", minutes=math.ceil(seconds / 60),
    )


def _refusal(user: User, now: datetime) -> LoginFailed | None:
    """Why a user who gave the right password still may not log in; told only to them."""
    if user.email_confirmed_at is None:
        return LoginFailed(
            "email_unconfirmed",
            N_("Please confirm your email address first: open the link in the mail we sent you. "
               "If the link has expired, you can ask for a new mail."),
        )
    expiry = user.initial_password_expires_at
    if user.must_change_password and expiry and expiry <= now:
        return LoginFailed(
            "initial_password_expired",
            N_("Your initial password has expired. Please ask your practice for a new one."),
        )
    return None


def _suspended() -> LoginFailed:
    return LoginFailed(
        "practice_suspended",
        N_("Your practice's access to this service is suspended. Please contact the operator of the service."),
    )


async def _all_suspended(conn, practice_ids: list[int]) -> bool:
    for practice_id in practice_ids:
        practice = await practice_store.practice_by_id(conn, practice_id)
        if practice is None or not practice.suspended:
            return False
    return True


@dataclass(frozen=True)
class LoggedIn:
    user: User
    token: str
    # None: logged in; "verify": a code is still needed; "enrol": an app must be set up first.
    second_factor: str | None = None
    # The browser's device cookie, now naming this account (accounts/devices.py).
    device: str = ""


class Login:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        clock: Clock,
        passwords: Passwords,
        sessions: Sessions,
        throttle: LoginThrottle,
        devices: DeviceCookies,
        audit: Audit,
    ) -> None:
        self._devices = devices
        self._engine = engine
        self._clock = clock
        self._passwords = passwords
        self._sessions = sessions
        self._throttle = throttle
        self._audit = audit

    async def log_in(self, identifier: str, password: str, *, address: str, user_agent: str,
                     device: str | None = None, client_gone: asyncio.Event | None = None) -> LoggedIn:
        """`client_gone`: set when the client stops waiting; a hash not yet begun is then
        not computed (Busy, and the attempt is not counted).

        `device`: the browser's device cookie. From a browser that logged in to this
        account before, failures count against that browser, not the account, so that a
        stranger's guesses cannot hold the owner up at all; from other browsers they count
        against the address with the account (long waits) and the account (short waits)."""
        self._passwords.check_room()
        identifier = identifier.strip()
        now = self._clock.now()
        async with self._engine.begin() as conn:
            user = await user_store.user_by_login(conn, identifier) if identifier else None
            known = self._devices.device_of(user.id, device) if user else None
            if user and known:
                waits = [(f"device:{user.id}:{known}", PAIR_BACKOFF)]
            else:
                waits = self._waits(self._throttle.account_key(user.id if user else None, identifier), address)
            address_key = self._throttle.address_key(address)
            locked_until = await self._throttle.admit_waiting(conn, waits, [(address_key, ADDRESS_POLICY)], now)
        if locked_until is not None:
            raise _locked(locked_until - now)

        async with self._not_counted_if_busy(waits, address_key):
            if user is not None and user.password_hash:
                verified = await self._passwords.verify(user.password_hash, password, client_gone=client_gone)
            else:
                verified = await self._passwords.verify_dummy(password, client_gone=client_gone)
        if not verified:
            if user is not None:
                async with self._engine.begin() as conn:
                    staff = await practice_store.staff_practice_ids(conn, user.id)
                    await self._audit.record_in_each(conn, staff, user.id, "login_failed", "user", user.id)
            raise _wrong()

        assert user is not None and user.password_hash is not None
        refusal = _refusal(user, now)
        new_hash = None
        if self._passwords.needs_rehash(user.password_hash):
            # Hashed before the transaction, which must not hold SQLite's write lock while
            # it waits; too busy now, the next login does it.
            with contextlib.suppress(Busy):
                new_hash = await self._passwords.hash(password)
        async with self._engine.begin() as conn:
            # The right password was given: it does not count toward a lockout, even when
            # the login is refused for another reason.
            await self._succeeded(conn, waits, address_key)
            if new_hash is not None:
                await user_store.replace_hash(conn, user.id, user.password_hash, new_hash)
            staff = await practice_store.staff_practice_ids(conn, user.id)
            if refusal is None and staff and not user.is_operator:
                # Staff of practices that are all suspended have nowhere to go.
                if await _all_suspended(conn, staff):
                    refusal = _suspended()
            if refusal is None:
                factor = await factor_store.factor_of(conn, user.id)
                enrolled = factor is not None and factor.secret is not None
                second_factor = "verify" if enrolled else ("enrol" if staff or user.is_operator else None)
                token = await self._sessions.start(
                    conn, user.id, user_agent, needs_second_factor=second_factor is not None
                )
        if refusal is not None:
            raise refusal
        return LoggedIn(user, token, second_factor, self._devices.issue(user.id, device))

    def _waits(self, account_key: str, address: str) -> list[tuple[str, Backoff]]:
        # In the order admit_waiting takes their rows, so that a success clearing them while
        # a parallel try counts them cannot deadlock on PostgreSQL.
        return sorted([(self._throttle.pair_key(address, account_key), PAIR_BACKOFF), (account_key, ACCOUNT_BACKOFF)],
                      key=lambda wait: wait[0])

    async def _succeeded(self, conn, waits: list[tuple[str, Backoff]], address_key: str) -> None:
        """The right password: its waits start afresh, the address gets its attempt back."""
        for key, _ in waits:
            await self._throttle.forget(conn, key)
        await self._throttle.give_back(conn, address_key)

    @contextlib.asynccontextmanager
    async def _not_counted_if_busy(self, waits: list[tuple[str, Backoff]], address_key: str):
        """An attempt the server was too busy to check gives its count and its wait back: a
        crowd told to retry must not hold itself up."""
        try:
            yield
        except Busy:
            async with self._engine.begin() as conn:
                for key, _ in waits:
                    await self._throttle.give_back_wait(conn, key)
                await self._throttle.give_back(conn, address_key)
            raise

    async def complete(self, user: User, pending_session_id: int, *, user_agent: str) -> str:
        """Both factors given: a new session id without the pending mark, and the audit entry."""
        async with self._engine.begin() as conn:
            await session_store.delete_session(conn, pending_session_id)
            token = await self._sessions.start(conn, user.id, user_agent)
            staff = await practice_store.staff_practice_ids(conn, user.id)
            await self._audit.record_in_each(conn, staff, user.id, "login", "user", user.id)
        return token

    async def verify_current_password(self, user: User, password: str, *, address: str) -> None:
        """Re-authentication before a credential change; attempts count like logins."""
        now = self._clock.now()
        waits = self._waits(self._throttle.account_key(user.id, user.username), address)
        address_key = self._throttle.address_key(address)
        async with self._engine.begin() as conn:
            locked_until = await self._throttle.admit_waiting(conn, waits, [(address_key, ADDRESS_POLICY)], now)
        if locked_until is not None:
            raise _locked(locked_until - now)
        async with self._not_counted_if_busy(waits, address_key):
            hashed = user.password_hash
            verified = bool(hashed) and await self._passwords.verify(hashed or "", password)
        if not verified:
            raise UserError("current_password_wrong", N_("Your current password is not correct."))
        async with self._engine.begin() as conn:
            await self._succeeded(conn, waits, address_key)
