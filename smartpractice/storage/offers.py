"""Requests for an offer from the public contact form."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.rows import new_id
from smartpractice.storage.tables import offer_requests


@dataclass(frozen=True)
class OfferRequest:
    id: int
    name: str
    practice_name: str
    email: str
    phone: str
    message: str
    created_at: datetime


async def insert_request(conn: AsyncConnection, *, now: datetime, **values: str) -> int:
    result = await conn.execute(insert(offer_requests).values(created_at=now, **values))
    return new_id(result)


async def recent_requests(conn: AsyncConnection, limit: int) -> list[OfferRequest]:
    query = select(offer_requests).order_by(offer_requests.c.created_at.desc()).limit(limit)
    return [
        OfferRequest(row.id, row.name, row.practice_name, row.email, row.phone, row.message, row.created_at)
        for row in await conn.execute(query)
    ]
