"""Password hashing (argon2id) and the password policy (ASVS 6.2, NIST SP 800-63B)."""

from __future__ import annotations

import asyncio
import math
import os
import re
import secrets
import threading
import time
import unicodedata
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import argon2
from zxcvbn import zxcvbn

from smartpractice.errors import Busy, UserError
from smartpractice.i18n import N_

PATIENT_MIN_LENGTH = 10
STAFF_MIN_LENGTH = 12
MAX_LENGTH = 256
# zxcvbn score 3: "safely unguessable", resists an offline attack on a slow hash.
MIN_STRENGTH = 3
# zxcvbn refuses longer input; 72 characters are plenty to judge by.
STRENGTH_SAMPLE = 72
GENERATED_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
MIN_WAIT_SECONDS = 0.5
# Linux nice value of the hashing threads (0 is normal, 19 the lowest priority).
HASHING_NICENESS = 5


class PasswordRejected(UserError):
    pass


def normalize(password: str) -> str:
    # NIST SP 800-63B §5.1.1.2: normalise Unicode so the same password typed on another
    # keyboard still matches.
    return unicodedata.normalize("NFKC", password)


def check_password(password: str, *, staff: bool, context: Iterable[str] = ()) -> None:
    """Raise PasswordRejected with the reason a user can act on, or return."""
    password = normalize(password)
    minimum = STAFF_MIN_LENGTH if staff else PATIENT_MIN_LENGTH
    if len(password) < minimum:
        raise PasswordRejected(
            "password_too_short", N_("The password needs at least %(minimum)d characters."),
            minimum=minimum,
        )
    if len(password) > MAX_LENGTH:
        raise PasswordRejected(
            "password_too_long", N_("The password may have at most %(maximum)d characters."),
            maximum=MAX_LENGTH,
        )
    words = _context_words(context)
    folded = password.casefold()
    if any(word in folded for word in words):
        raise PasswordRejected(
            "password_contains_context",
            N_("The password must not contain your name, user name, email address or the "
               "practice's name."),
        )
    if zxcvbn(password[:STRENGTH_SAMPLE], user_inputs=sorted(words))["score"] < MIN_STRENGTH:
        raise PasswordRejected(
            "password_too_common",
            N_("This password is too common or too easy to guess. Several unrelated words "
               "make a strong password that is easy to remember."),
        )


def _context_words(context: Iterable[str]) -> set[str]:
    words: set[str] = set()
    for value in context:
        for word in re.split(r"[\W_]+", value.casefold()):
            if len(word) >= 4:
                words.add(word)
    return words


def generate_password() -> str:
    """An initial password that is easy to read out and type: 4 groups of 4, about 79 bits."""
    groups = ("".join(secrets.choice(GENERATED_ALPHABET) for _ in range(4)) for _ in range(4))
    return "-".join(groups)


class Passwords:
    """argon2id hashing off the event loop: at most `concurrency` hashes at once, at most
    `queue` more waiting, and none waiting longer than would let it finish within
    `wait_seconds` (judged by how long hashes took lately). Beyond that the request is told
    to come back (Busy) instead of piling up; a request whose client has left (its handler
    is cancelled, or `client_gone` is set) takes its hash out of the queue.

    A hand-made executor around concurrent.futures because asyncio.to_thread queues without
    bound and cannot take back work that has not started."""

    def __init__(
        self, *, concurrency: int, queue: int = 16, wait_seconds: float = 4.0,
        hasher: argon2.PasswordHasher | None = None,
    ) -> None:
        # argon2-cffi's defaults are the production parameters (docs/security.md).
        self._hasher = hasher or argon2.PasswordHasher()
        self._executor = ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="argon2", initializer=_behind_the_event_loop
        )
        self._concurrency = concurrency
        self._most = concurrency + queue
        self._wait = wait_seconds
        self._recent = 0.0  # seconds a hash took lately, a moving average
        self._pending = 0
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, normalize(password))

    async def verify(self, password_hash: str, password: str, *, client_gone: asyncio.Event | None = None) -> bool:
        if len(password) > MAX_LENGTH:
            return False
        return await self._run(self._verify, password_hash, normalize(password), client_gone=client_gone)

    async def verify_dummy(self, password: str, *, client_gone: asyncio.Event | None = None) -> bool:
        """Spend the time a real verification takes, so unknown users cannot be told apart."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        await self.verify(self._dummy_hash, password, client_gone=client_gone)
        return False

    @property
    def waiting(self) -> int:
        """Requests whose hash is queued or being computed."""
        return self._pending

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def check_room(self) -> None:
        """Raise Busy if a hash asked for now could not be done within the budget: callers
        ask first, so a crowd is answered before it costs a database write."""
        ahead = self._pending - self._concurrency + 1  # jobs to finish before a new one starts
        expected = (math.ceil(ahead / self._concurrency) if ahead > 0 else 0) * self._recent + self._recent
        if self._pending >= self._most or (ahead > 0 and expected > self._wait):
            raise Busy("password_hashing")

    async def _run(self, function, *args, client_gone: asyncio.Event | None = None):
        self.check_room()
        self._pending += 1
        job = self._executor.submit(self._timed, function, *args)
        result = asyncio.wrap_future(job)
        gone = asyncio.ensure_future((client_gone or asyncio.Event()).wait())
        try:
            # A machine slower than the budget still gets a free worker a moment to start.
            await asyncio.wait({result, gone}, timeout=max(MIN_WAIT_SECONDS, self._wait - self._recent),
                               return_when=asyncio.FIRST_COMPLETED)
            # cancel() only succeeds for a job no thread has started: that one is dropped.
            if not result.done() and job.cancel():
                raise Busy("client_gone" if gone.done() else "password_hashing")
            return await result
        except asyncio.CancelledError:
            job.cancel()  # the client left: a hash still queued is never computed
            raise
        finally:
            gone.cancel()
            self._pending -= 1

    def _timed(self, function, *args):
        started = time.monotonic()
        try:
            return function(*args)
        finally:
            # Written from a worker thread: a lost update only blurs the average. The first
            # hash (the dummy one, at start-up) sets it.
            took = time.monotonic() - started
            self._recent = 0.7 * self._recent + 0.3 * took if self._recent else took

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False


def _behind_the_event_loop() -> None:
    """Hashing threads (and the lanes argon2 starts from them) yield the CPU to the event
    loop, so pages and "try again" answers stay quick while the cores are busy hashing."""
    if hasattr(os, "setpriority"):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)
