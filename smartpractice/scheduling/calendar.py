"""iCalendar files for consultation mails (RFC 5545, iTIP methods from RFC 5546).

The UID stays the same and SEQUENCE rises with every change, so a calendar updates or
cancels the entry it already has instead of adding another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from icalendar import Calendar, Event, vCalAddress, vText

from smartpractice.storage.consultations import Consultation


@dataclass(frozen=True)
class CalendarEntry:
    consultation: Consultation
    summary: str
    organizer_name: str
    organizer_email: str
    attendee_email: str
    url: str | None


def calendar_file(entry: CalendarEntry, *, now: datetime, cancelled: bool = False, published: bool = False) -> str:
    """`published`: a file the guest downloads to add to their calendar (PUBLISH, no reply
    expected) rather than the invitation a mail carries (REQUEST); the same UID, so either
    updates the entry the other made."""
    consultation = entry.consultation
    calendar = Calendar()
    calendar.add("prodid", "-//smartpractice//video consultations//DE")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancelled else "PUBLISH" if published else "REQUEST")
    event = Event()
    event.add("uid", consultation.uid)
    event.add("sequence", consultation.sequence)
    event.add("dtstamp", now)
    event.add("dtstart", consultation.starts_at)
    event.add("dtend", consultation.ends_at)
    # The summary names the practice only: a title may say why someone sees a doctor,
    # and calendars are synchronised to places the practice does not control.
    event.add("summary", entry.summary)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    organizer = vCalAddress(f"mailto:{entry.organizer_email}")
    organizer.params["cn"] = vText(entry.organizer_name)
    event.add("organizer", organizer)
    attendee = vCalAddress(f"mailto:{entry.attendee_email}")
    attendee.params["role"] = vText("REQ-PARTICIPANT")
    event.add("attendee", attendee)
    if entry.url:
        event.add("url", entry.url)
        event.add("location", entry.url)
    calendar.add_component(event)
    return calendar.to_ical().decode()
