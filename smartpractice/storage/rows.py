"""Small readers of SQLAlchemy results that every query module shares."""

from __future__ import annotations

from sqlalchemy.engine import CursorResult


def new_id(result: CursorResult) -> int:
    """The primary key of the row an INSERT just wrote (SQLAlchemy types it as optional,
    since not every statement has one)."""
    key = result.inserted_primary_key
    assert key is not None, "an INSERT of one row always has a primary key"
    return key[0]
