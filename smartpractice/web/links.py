"""Absolute links for mails, built from the one URL map and the configured base URL
(the `smartpractice.links.Links` protocol the services use)."""

from __future__ import annotations

from aiohttp import web


class RouterLinks:
    def __init__(self, *, router: web.UrlDispatcher, base_url: str) -> None:
        self._router = router
        self._base_url = base_url

    def url(self, route: str, *, query: dict[str, str] | None = None, **parts: str) -> str:
        path = self._router[route].url_for(**parts)
        if query:
            path = path.with_query(query)
        return self._base_url + str(path)
