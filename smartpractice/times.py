"""Local wall-clock times of a practice, to and from the UTC the database keeps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime

from smartpractice.errors import UserError
from smartpractice.i18n import N_

# A practice's zone until it chooses another (the column's default); people without a
# practice (the operator) read times in it too.
DEFAULT_ZONE = "Europe/Berlin"


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError("time_zone_invalid", N_("Please choose a valid time zone.")) from None


# Far enough for any appointment; the edges of `date` itself would overflow a week's view.
EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)


def parse_day(text: str) -> date:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        day = None
    if day is None or not EARLIEST <= day <= LATEST:
        raise UserError("date_invalid", N_("Please enter a date as YYYY-MM-DD."))
    return day


def local_to_utc(day_text: str, time_text: str, zone_name: str) -> datetime:
    """A date and time as the practice's clock shows them, in UTC.

    A time that the clocks skip in spring does not exist and is refused; one that they
    show twice in autumn means its first occurrence (PEP 495's fold=0).
    """
    day = parse_day(day_text)
    try:
        wall = time.fromisoformat(time_text.strip())
    except ValueError:
        raise UserError("time_invalid", N_("Please enter a time as HH:MM.")) from None
    tz = zone(zone_name)
    local = datetime.combine(day, wall.replace(second=0, microsecond=0, tzinfo=None)).replace(tzinfo=tz)
    # A skipped wall time does not survive the round trip through UTC.
    if local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise UserError(
            "time_skipped",
            N_("%(time)s does not exist on %(day)s: the clocks change that night. Please choose another time."),
            time=wall.strftime("%H:%M"), day=day.isoformat(),
        )
    return local.astimezone(UTC)


def day_bounds(day: date, days: int, zone_name: str) -> tuple[datetime, datetime]:
    """UTC bounds of `days` whole local days from `day`: 23 or 25 hours when clocks change."""
    tz = zone(zone_name)
    start = datetime.combine(day, time(), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=days), time(), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def local(moment: datetime, zone_name: str) -> datetime:
    return moment.astimezone(zone(zone_name))


def spoken(moment: datetime, zone_name: str, language: str) -> str:
    """A time as people say it, in the practice's zone and without the zone's name:
    "Dienstag, 1. Dezember 2026, 14:16 Uhr", "Tuesday, December 1, 2026, 2:16 PM"."""
    pattern = "EEEE, d. MMMM y, HH:mm 'Uhr'" if language == "de" else "EEEE, MMMM d, y, h:mm a"
    return format_datetime(moment, pattern, tzinfo=zone(zone_name), locale="de" if language == "de" else "en")


def stamped(moment: datetime, zone_name: str, language: str) -> str:
    """A time to the second for lists such as the audit log, in the reader's zone and
    language: "01.12.2026, 14:16:05", "Dec 1, 2026, 2:16:05 PM"."""
    return format_datetime(moment, "medium", tzinfo=zone(zone_name), locale="de" if language == "de" else "en")


@dataclass(frozen=True)
class SpokenTime:
    """A time in a message whose language is chosen only when it is shown (a UserError's
    parameter; errors.UserError.text calls `localized`)."""

    moment: datetime
    zone_name: str

    def localized(self, language: str) -> str:
        return spoken(self.moment, self.zone_name, language)
