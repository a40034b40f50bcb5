"""The two things a TAN guest types: the invitation's short code and the one-time code (TAN).

The TAN has 8 digits (26.6 bits; ASVS 6.5.4 asks for 20): digits are the easiest to read
out on the phone and none can be mistaken for another. It is stored only as an HMAC under
the server secret, since a plain hash of so few bits falls to a dictionary at once.

The invitation code has 8 characters from 31 letters and digits without look-alikes (no
I, L, O, 0, 1): about 40 bits, so nobody finds invitations by trying codes within the
rate limits. It is a lookup id like a user name, not a secret: it finds the invitation on
the login page ("Log in with TAN"), and the TAN proves the guest.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TAN_DIGITS = 8
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8


def normalize_tan(typed: str) -> str:
    return "".join(character for character in typed if character.isdigit())


def normalize_code(typed: str) -> str:
    """Upper case, without the spaces and dashes people type or copy with it."""
    return "".join(character for character in typed.upper() if character.isalnum())


def show_code(code: str) -> str:
    """As printed: two groups of four, `K7MQ-X2PA`."""
    return f"{code[:4]}-{code[4:]}"


def new_tan() -> str:
    digits = "".join(secrets.choice("0123456789") for _ in range(TAN_DIGITS))
    return f"{digits[:4]} {digits[4:]}"


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


class TanHasher:
    """HMAC-SHA256 of a TAN under the server secret."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def __call__(self, tan: str) -> str:
        return hmac.new(self._secret, normalize_tan(tan).encode(), hashlib.sha256).hexdigest()
