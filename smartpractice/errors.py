"""Problems a user can fix. The web layer turns them into re-shown forms or API errors."""

from __future__ import annotations


class UserError(Exception):
    """`code` is stable (the API returns it); `message` is a catalog msgid with %(name)s params."""

    status = 400

    def __init__(self, code: str, message: str, **params: object) -> None:
        super().__init__(code)
        self.code = code
        self.message = message
        self.params = params
