"""What several test modules share: building the app, logging in, reading mail."""

from __future__ import annotations

import argon2
from aiohttp import web

from smartpractice.accounts.passwords import Passwords
from smartpractice.app import create_app
from smartpractice.clock import Clock
from smartpractice.config import Settings


def cheap_passwords() -> Passwords:
    """Real argon2id at the smallest cost argon2 allows: a hash takes microseconds, not
    the production second (test_passwords checks the production parameters)."""
    return Passwords(concurrency=2, hasher=argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def make_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    """The application as tests run it: the given clock, cheap password hashing."""
    return create_app(settings, clock=clock, passwords=cheap_passwords())
