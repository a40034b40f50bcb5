"""Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device Cookies"): a
browser that has logged in to an account carries a signed token for it. Wrong passwords
from that browser count against that browser only, so a stranger who guesses at someone's
user name locks out unknown browsers, never the owner's own phone or computer.

The cookie holds no user id: each entry is a random nonce and an HMAC over the account and
the nonce, checked against the account that is logging in. A shared computer keeps entries
for a few accounts."""

from __future__ import annotations

import hashlib
import hmac
import secrets

ACCOUNTS_PER_DEVICE = 4


class DeviceCookies:
    def __init__(self, *, secret: str) -> None:
        self._secret = secret.encode()

    def _signature(self, user_id: int, nonce: str) -> str:
        return hmac.new(self._secret, f"device:{user_id}:{nonce}".encode(), hashlib.sha256).hexdigest()[:32]

    def _entries(self, cookie: str | None) -> list[tuple[str, str]]:
        entries = []
        for entry in (cookie or "").split("~")[:ACCOUNTS_PER_DEVICE]:
            nonce, _, signature = entry.partition(".")
            if nonce and signature:
                entries.append((nonce, signature))
        return entries

    def device_of(self, user_id: int, cookie: str | None) -> str | None:
        """The nonce naming this browser for this account, if its cookie has a genuine entry."""
        for nonce, signature in self._entries(cookie):
            if hmac.compare_digest(signature, self._signature(user_id, nonce)):
                return nonce
        return None

    def issue(self, user_id: int, cookie: str | None) -> str:
        """The cookie after a login: this account's entry first and fresh, a few others kept."""
        others = [(nonce, signature) for nonce, signature in self._entries(cookie)
                  if not hmac.compare_digest(signature, self._signature(user_id, nonce))]
        nonce = secrets.token_urlsafe(12)
        entries = [(nonce, self._signature(user_id, nonce)), *others][:ACCOUNTS_PER_DEVICE]
        return "~".join(f"{n}.{s}" for n, s in entries)
