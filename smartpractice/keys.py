"""Typed keys for what the application and each request carry."""

from __future__ import annotations

import asyncio
import gettext

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.accounts.sessions import ActiveSession, GuestSession
from smartpractice.clock import Clock
from smartpractice.config import Settings
from smartpractice.draining import Draining
from smartpractice.i18n import Catalogs
from smartpractice.jobs.runner import JobRunner
from smartpractice.mail.sender import MailSender
from smartpractice.metrics import Metrics
from smartpractice.rooms.relays import RelayRooms
from smartpractice.rooms.state import RoomState
from smartpractice.services import Services

settings_key = web.AppKey("settings", Settings)
clock_key = web.AppKey("clock", Clock)
catalogs_key = web.AppKey("catalogs", Catalogs)
secret_key = web.AppKey("secret", str)
services_key = web.AppKey("services", Services)
# For the mail sender and the jobs; handlers ask services instead.
engine_key = web.AppKey("engine", AsyncEngine)
jobs_key = web.AppKey("jobs", JobRunner)
mail_sender_key = web.AppKey("mail_sender", MailSender)
room_state_key = web.AppKey("room_state", RoomState)
# Present only with SMARTPRACTICE_RELAY_WORKERS: the relay workers, reached through Redis.
relays_key = web.AppKey("relays", RelayRooms)
metrics_key = web.AppKey("metrics", Metrics)
draining_key = web.AppKey("draining", Draining)

active_session_key: web.RequestKey[ActiveSession | None] = web.RequestKey("active_session")
guest_session_key: web.RequestKey[GuestSession | None] = web.RequestKey("guest_session")
language_key = web.RequestKey("language", str)
translations_key = web.RequestKey("translations", gettext.NullTranslations)
# Set when the client of a sending (a POST and the like) has gone: web/middlewares.py.
client_gone_key = web.RequestKey("client_gone", asyncio.Event)
