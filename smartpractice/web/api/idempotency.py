"""The `Idempotency-Key` header of the operations that create something (IETF
draft-ietf-httpapi-idempotency-key-header): practice software that retries after a lost
answer makes one record and one mail. What the key claims is in submissions.py."""

from __future__ import annotations

import hashlib
import json
import re

from aiohttp import web

from smartpractice.submissions import Idempotent
from smartpractice.web.api.errors import ApiError
from smartpractice.web.api.request import api_practice

# The draft allows any string; visible ASCII up to 255 holds a UUID and any practical scheme.
KEY = re.compile(r"[\x21-\x7e]{1,255}")


def idempotency(request: web.Request, body: dict) -> Idempotent | None:
    """The request's key with a fingerprint of the operation and its parsed body (a retry
    that only reorders the JSON is the same request); None without the header."""
    token = request.headers.get("Idempotency-Key")
    if token is None:
        return None
    if not KEY.fullmatch(token):
        raise ApiError(400, "invalid_input", "An Idempotency-Key is 1 to 255 visible ASCII characters.",
                       field="Idempotency-Key")
    asked = json.dumps({"operation": request.path, "body": body}, sort_keys=True, default=str)
    return Idempotent(api_practice(request).id, token, hashlib.sha256(asked.encode()).hexdigest())


def key_reused() -> ApiError:
    return ApiError(422, "idempotency_key_reused",
                    "This Idempotency-Key came with a different request before. Use a new key for a new request.",
                    field="Idempotency-Key")


def replayed(response: web.Response) -> web.Response:
    """The answer to a repeated request: what the first one made, marked as a replay."""
    response.headers["Idempotent-Replayed"] = "true"
    return response
