"""Password hashing (argon2id) and the password policy (ASVS 6.2, NIST SP 800-63B)."""

from __future__ import annotations

import asyncio
import re
import secrets
import unicodedata
from collections.abc import Iterable

import argon2
from zxcvbn import zxcvbn

from smartpractice.errors import UserError
from smartpractice.i18n import N_

PATIENT_MIN_LENGTH = 10
STAFF_MIN_LENGTH = 12
MAX_LENGTH = 256
# zxcvbn score 3: "safely unguessable", resists an offline attack on a slow hash.
MIN_STRENGTH = 3
# zxcvbn refuses longer input; 72 characters are plenty to judge by.
STRENGTH_SAMPLE = 72
GENERATED_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


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
    """argon2id hashing off the event loop, at most `concurrency` hashes at once."""

    def __init__(self, *, concurrency: int, hasher: argon2.PasswordHasher | None = None) -> None:
        # argon2-cffi's defaults are the production parameters (docs/security.md).
        self._hasher = hasher or argon2.PasswordHasher()
        self._slots = asyncio.Semaphore(concurrency)
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, normalize(password))

    async def verify(self, password_hash: str, password: str) -> bool:
        if len(password) > MAX_LENGTH:
            return False
        async with self._slots:
            return await asyncio.to_thread(self._verify, password_hash, normalize(password))

    async def verify_dummy(self, password: str) -> bool:
        """Spend the time a real verification takes, so unknown users cannot be told apart."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        await self.verify(self._dummy_hash, password)
        return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False
