"""What services need of the URL map: absolute links for mails.

A protocol, so that services never import the web layer that implements it
(`web/links.py`, built from the one URL map and the configured base URL).
"""

from __future__ import annotations

from typing import Protocol


class Links(Protocol):
    def url(self, route: str, *, query: dict[str, str] | None = None, **parts: str) -> str:
        """The absolute URL of a named route."""
        ...
