"""JSON request bodies, checked strictly at the edge.

Each endpoint declares its fields once, as data; the same declaration checks the body
and becomes the request schema in the OpenAPI document, so the two cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web

from smartpractice.web.api.errors import ApiError

JSON_TYPE = "application/json"
CONTROL_CHARACTERS = frozenset(chr(code) for code in (*range(0x20), 0x7F))


@dataclass(frozen=True)
class Text:
    """A string field of a request body."""

    name: str
    max_length: int
    description: str
    required: bool = True
    min_length: int = 1
    choices: tuple[str, ...] = ()
    format: str | None = None
    pattern: str | None = None

    def schema(self) -> dict:
        schema: dict = {"type": "string", "description": self.description}
        if self.choices:
            schema["enum"] = list(self.choices)
        else:
            schema["minLength"] = self.min_length
            schema["maxLength"] = self.max_length
        if self.format:
            schema["format"] = self.format
        if self.pattern:
            schema["pattern"] = self.pattern
        return schema

    def check(self, value: object) -> str:
        """The value if it is acceptable text; the service checks what it means."""
        if not isinstance(value, str):
            raise _invalid(self.name, f"The field `{self.name}` must be a string.")
        if self.choices and value not in self.choices:
            raise _invalid(self.name, f"The field `{self.name}` must be one of: {', '.join(self.choices)}.")
        if not self.min_length <= len(value) <= self.max_length:
            raise _invalid(
                self.name,
                f"The field `{self.name}` must have {self.min_length} to {self.max_length} characters.",
            )
        # A NUL or a lone surrogate would otherwise surface as a database error.
        if not CONTROL_CHARACTERS.isdisjoint(value) or not _encodable(value):
            raise _invalid(self.name, f"The field `{self.name}` contains characters that are not allowed.")
        return value


@dataclass(frozen=True)
class Integer:
    """A whole-number field of a request body."""

    name: str
    minimum: int
    maximum: int
    description: str
    required: bool = True

    def schema(self) -> dict:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum, "description": self.description}

    def check(self, value: object) -> int:
        # JSON true is a Python int; it is no number of minutes or id.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(self.name, f"The field `{self.name}` must be a whole number.")
        if not self.minimum <= value <= self.maximum:
            raise _invalid(self.name, f"The field `{self.name}` must be between {self.minimum} and {self.maximum}.")
        return value


Field = Text | Integer


def _encodable(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _invalid(name: str, message: str) -> ApiError:
    return ApiError(400, "invalid_input", message, field=name)


def body_schema(fields: tuple[Field, ...]) -> dict:
    return {
        "type": "object",
        "properties": {field.name: field.schema() for field in fields},
        "required": [field.name for field in fields if field.required],
        "additionalProperties": False,
    }


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ApiError(400, "invalid_json", "The request body names a field twice.")
    return dict(pairs)


def _no_constants(name: str) -> None:
    raise ValueError(name)


async def read_body(request: web.Request, fields: tuple[Field, ...]) -> dict:
    """The body's fields, checked; any problem is an ApiError naming the field."""
    if request.content_type != JSON_TYPE:
        raise ApiError(415, "unsupported_media_type", "Send the request body as JSON with Content-Type: application/json.")
    raw = await request.read()  # aiohttp answers 413 past client_max_size
    try:
        data = json.loads(raw, object_pairs_hook=_unique_keys, parse_constant=_no_constants)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_input", "The request body must be a JSON object.")
    known = {field.name: field for field in fields}
    for name in data:
        if name not in known:
            raise _invalid(name[:100], f"Unknown field `{name[:100]}`.")
    checked = {}
    for field in fields:
        if field.name in data:
            checked[field.name] = field.check(data[field.name])
        elif field.required:
            raise _invalid(field.name, f"The field `{field.name}` is missing.")
    return checked
