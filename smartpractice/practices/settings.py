"""What a practice's admin sets: how it appears to patients and how its consultations run."""

from __future__ import annotations

import zoneinfo
from dataclasses import replace
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncEngine

from smartpractice.audit import Audit
from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.names import tidy
from smartpractice.storage import practice_settings as store
from smartpractice.storage.practice_settings import PracticeSettings

# Where a TAN goes: into the invitation mail, or only to the clinician, who passes it on
# another way.
TAN_DELIVERIES = ("mail", "clinician")
# "p2p": peer to peer first, the relay only when needed; "relay": always the relay.
RELAY_POLICIES = ("p2p", "relay")
# A browser without encoded transforms: refused, or let in with transport encryption only.
E2EE_POLICIES = ("require", "allow_transport")
# Beyond a handful, a video consultation turns into a conference the relay is not sized for.
MAX_PARTICIPANTS = 8
TEXT_FIELDS = ("name", "contact", "address", "time_zone", "tan_delivery", "relay_policy", "e2ee_policy")
NUMBER_FIELDS = ("consultation_minutes", "join_window_minutes", "max_participants", "retention_days")


def _number(typed: str, code: str, message: str, low: int, high: int, **params: object) -> int:
    try:
        value = int(typed.strip())
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise UserError(code, message, **cast("dict[str, Any]", {"low": low, "high": high, **params}))
    return value


class PracticeConfiguration:
    def __init__(self, *, engine: AsyncEngine, audit: Audit, retention_ceiling: int) -> None:
        self._engine = engine
        self._audit = audit
        self._retention_ceiling = retention_ceiling
        self._time_zones = frozenset(zoneinfo.available_timezones())

    async def get(self, practice_id: int) -> PracticeSettings:
        async with self._engine.connect() as conn:
            return await store.settings_of(conn, practice_id)

    def parse(self, current: PracticeSettings, typed: dict[str, str], self_registration: bool) -> PracticeSettings:
        """The settings as typed on the form, checked; raises UserError naming the first problem."""
        name = tidy(typed["name"])
        if not name or len(name) > 200:
            raise UserError("practice_name_invalid", N_("Please enter a practice name of at most 200 characters."))
        if len(typed["contact"]) > 254 or len(typed["address"]) > 500:
            raise UserError("contact_invalid", N_("Contact and address are too long."))
        if typed["time_zone"] not in self._time_zones:
            raise UserError("time_zone_invalid", N_("Please choose a time zone from the list."))
        if (typed["tan_delivery"] not in TAN_DELIVERIES or typed["relay_policy"] not in RELAY_POLICIES
                or typed["e2ee_policy"] not in E2EE_POLICIES):
            raise UserError("choice_invalid", N_("Please choose one of the offered options."))
        retention = None
        if typed["retention_days"].strip():
            retention = _number(
                typed["retention_days"], "retention_invalid",
                N_("Keep metadata between %(low)d and %(high)d days, or leave the field empty for the site's period."),
                1, self._retention_ceiling,
            )
        return replace(
            current,
            name=name,
            contact=typed["contact"].strip(),
            address=typed["address"].strip(),
            time_zone=typed["time_zone"],
            consultation_minutes=_number(
                typed["consultation_minutes"], "consultation_minutes_invalid",
                N_("A consultation lasts between %(low)d and %(high)d minutes."), 5, 180,
            ),
            join_window_minutes=_number(
                typed["join_window_minutes"], "join_window_invalid",
                N_("Patients may join between %(low)d and %(high)d minutes early."), 0, 60,
            ),
            max_participants=_number(
                typed["max_participants"], "max_participants_invalid",
                N_("A consultation has between %(low)d and %(high)d participants besides the clinician."),
                1, MAX_PARTICIPANTS,
            ),
            tan_delivery=typed["tan_delivery"],
            relay_policy=typed["relay_policy"],
            e2ee_policy=typed["e2ee_policy"],
            self_registration=self_registration,
            retention_days=retention,
        )

    async def save(self, practice_id: int, settings: PracticeSettings, *, actor: int) -> None:
        async with self._engine.begin() as conn:
            await store.save_settings(conn, practice_id, settings)
            await self._audit.record(conn, practice_id, actor, "settings_changed", "practice", practice_id)

    @property
    def time_zones(self) -> list[str]:
        return sorted(self._time_zones)

    @property
    def retention_ceiling(self) -> int:
        return self._retention_ceiling
