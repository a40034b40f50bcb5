"""Scheduling: clinicians plan consultations, and their participants hear of every change."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.utils import parseaddr

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smartpractice.audit import Audit
from smartpractice.clock import Clock
from smartpractice.errors import UserError
from smartpractice.i18n import N_, NP_, Catalogs
from smartpractice.links import Links
from smartpractice.mail.outbox import Outbox
from smartpractice.onboarding.invitations import Invitations, Invitee, NewInvitation
from smartpractice.scheduling import lifecycle
from smartpractice.scheduling.calendar import CalendarEntry, calendar_file
from smartpractice.scheduling.lifecycle import Transition
from smartpractice.storage import calls as call_store
from smartpractice.storage import consultations as store
from smartpractice.storage.calls import PastCall
from smartpractice.storage.consultations import Consultation as Consultation
from smartpractice.storage.consultations import Participant, SchedulingPolicy
from smartpractice.storage.invitations import practice_contact, set_expiry_of_consultation
from smartpractice.storage.practices import Practice, treats_patients_in
from smartpractice.storage.reminders import forget_reminders_of
from smartpractice.storage.tables import ConsultationState
from smartpractice.submissions import Idempotent, Once, claim, settle
from smartpractice.times import day_bounds, spoken

# Longer than any retention period, so the list shows all the purge has left.
RECORDS_DAYS = 100
SHORTEST_MINUTES = 5
HORIZON_DAYS = 731
LONGEST_MINUTES = store.MAX_DURATION_HOURS * 60
OPEN_STATES = (ConsultationState.SCHEDULED, ConsultationState.RUNNING)


class ConsultationNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Appointment:
    """Title, start and length as entered, checked where they enter."""

    title: str
    starts_at: datetime
    duration_minutes: int

    @classmethod
    def parse(cls, title: str, starts_at: datetime, duration: str | int, *, now: datetime) -> Appointment:
        title = title.strip()
        if len(title) > 200:
            raise UserError("title_invalid", N_("Please enter a title of at most 200 characters."))
        try:
            minutes = int(duration)
        except ValueError:
            minutes = 0
        if not SHORTEST_MINUTES <= minutes <= LONGEST_MINUTES:
            raise UserError(
                "duration_invalid", N_("The duration must be between %(low)d and %(high)d minutes."),
                low=SHORTEST_MINUTES, high=LONGEST_MINUTES,
            )
        if starts_at > now + timedelta(days=HORIZON_DAYS):
            raise UserError("start_too_far", N_("Please choose a start within the next two years."))
        if starts_at + timedelta(minutes=minutes) <= now:
            raise UserError("start_past", N_("This time has already passed. Please choose a time in the future."))
        return cls(title, starts_at, minutes)


@dataclass(frozen=True)
class ConsultationView:
    consultation: Consultation
    participants: list[Participant]
    policy: SchedulingPolicy
    # Other planned or running consultations of the same clinician at the same time.
    overlaps: tuple[Consultation, ...] = ()


@dataclass(frozen=True)
class Scheduled:
    consultation: Consultation
    # TANs the clinician must pass on themselves (practice setting "clinician").
    invitations: list[NewInvitation]


@dataclass(frozen=True)
class _MailFacts:
    """What every mail about one consultation says: when, and the calendar entry."""

    consultation: Consultation
    practice: str
    zone: str
    organizer: str
    catalogs: Catalogs
    now: datetime
    cancelled: bool = False

    def when(self, language: str) -> str:
        return spoken(self.consultation.starts_at, self.zone, language)

    def calendar(self, email: str, language: str, url: str | None, *, published: bool = False) -> str:
        summary = self.catalogs.get(language).gettext("Video consultation with %(practice)s") % {
            "practice": self.practice
        }
        entry = CalendarEntry(self.consultation, summary, self.practice, self.organizer, email, url)
        return calendar_file(entry, now=self.now, cancelled=self.cancelled, published=published)


class Consultations:
    def __init__(
        self, *, engine: AsyncEngine, clock: Clock, outbox: Outbox, links: Links, invitations: Invitations,
        catalogs: Catalogs, audit: Audit, mail_from: str, tan_grace: timedelta,
    ) -> None:
        self._audit = audit
        self._engine = engine
        self._clock = clock
        self._outbox = outbox
        self._links = links
        self._invitations = invitations
        self._catalogs = catalogs
        self._organizer = parseaddr(mail_from)[1] or "noreply@localhost"
        self._tan_grace = tan_grace

    async def policy(self, practice_id: int) -> SchedulingPolicy:
        async with self._engine.connect() as conn:
            return await store.policy_of(conn, practice_id)

    async def schedule(
        self, practice: Practice, clinician_id: int | None, plan: Appointment, *,
        patient_ids: Sequence[int] = (), invitees: Sequence[Invitee] = (), actor: int | None = None,
        once: Once | Idempotent | None = None,
    ) -> Scheduled:
        """`actor` is the staff member for the audit log; None for practice software. A
        form's `once` token makes a second sending raise AlreadySubmitted instead."""
        now = self._clock.now()
        async with self._engine.begin() as conn:
            await claim(conn, once, now)
            consultation = await self._insert(conn, practice, clinician_id, plan, now)
            # Invitation mails name the clinician who holds the consultation.
            invitations = await self._add(conn, practice, consultation, clinician_id, patient_ids, invitees)
            await self._audit.record(conn, practice.id, actor, "consultation_created", "consultation", consultation.id)
            await settle(conn, once, "consultation", consultation.id)
        return Scheduled(consultation, invitations)

    async def invite_now(
        self, practice: Practice, clinician_id: int | None, invitee: Invitee, *, actor: int | None = None,
        once: Once | Idempotent | None = None,
    ) -> NewInvitation:
        """An invitation without a planned time: an instant consultation with the inviting
        clinician (None: practice software; then every clinician's list shows the guest),
        starting now for the practice's usual length. The guest's TAN stays valid for
        SMARTPRACTICE_TAN_HOURS, since they may read the mail later."""
        now = self._clock.now()
        async with self._engine.begin() as conn:
            await claim(conn, once, now)
            policy = await store.policy_of(conn, practice.id)
            consultation = await self._insert(conn, practice, clinician_id, Appointment("", now, policy.consultation_minutes), now)
            # The invitation names who sent it: the clinician, or an admin who invites to the practice.
            [invited] = await self._add(
                conn, practice, consultation, clinician_id if clinician_id is not None else actor, (), [invitee],
                expires_at=max(consultation.ends_at + self._tan_grace, now + self._invitations.lifetime),
                instant=True,
            )
            await self._audit.record(conn, practice.id, actor, "consultation_created", "consultation", consultation.id)
            await settle(conn, once, "invitation", invited.invitation.id)
        return invited

    async def _insert(self, conn: AsyncConnection, practice: Practice, clinician_id: int | None, plan: Appointment,
                      now: datetime) -> Consultation:
        consultation_id = await store.insert_consultation(
            conn, practice_id=practice.id, clinician_id=clinician_id, title=plan.title,
            starts_at=plan.starts_at, duration_minutes=plan.duration_minutes,
            uid=f"{uuid.uuid4()}@smartpractice", now=now,
        )
        consultation = await store.consultation_by_id(conn, consultation_id)
        assert consultation is not None
        return consultation

    async def add_participants(
        self, practice: Practice, consultation_id: int, invited_by: int | None, *,
        patient_ids: Sequence[int] = (), invitees: Sequence[Invitee] = (), once: Once | None = None,
    ) -> Scheduled:
        async with self._engine.begin() as conn:
            await claim(conn, once, self._clock.now())
            consultation = await self._open(conn, practice.id, consultation_id)
            invitations = await self._add(conn, practice, consultation, invited_by, patient_ids, invitees)
            await self._audit.record(conn, practice.id, invited_by, "participant_added", "consultation", consultation_id)
            await settle(conn, once, "consultation", consultation_id)
        return Scheduled(consultation, invitations)

    async def _add(
        self, conn: AsyncConnection, practice: Practice, consultation: Consultation, invited_by: int | None,
        patient_ids, invitees, *, expires_at: datetime | None = None, instant: bool = False,
    ) -> list[NewInvitation]:
        policy = await store.policy_of(conn, practice.id)
        present = await store.participants_of(conn, consultation.id)
        if len(present) + len(patient_ids) + len(invitees) > policy.max_participants:
            raise UserError(
                "too_many_participants",
                NP_("A consultation can have at most %(count)d participant besides the clinician.",
                    "A consultation can have at most %(count)d participants besides the clinician."),
                number="count", count=policy.max_participants,
            )
        facts = self._facts(consultation, practice.name, policy)
        now = self._clock.now()
        for user_id in dict.fromkeys(patient_ids):
            if not await store.patient_of(conn, practice.id, user_id):
                raise UserError("patient_unknown", N_("This patient does not belong to the practice."))
            if any(p.user_id == user_id for p in present):
                raise UserError("participant_present", N_("This patient already takes part."))
            await store.insert_participant(conn, consultation.id, now, user_id=user_id)
        for participant in await store.participants_of(conn, consultation.id):
            if participant.user_id in patient_ids:
                await self._mail(conn, "consultation_scheduled", participant, facts)
        invited = []
        for invitee in invitees:
            new = await self._invitations.invite_in(
                conn, practice, invitee, invited_by=invited_by,
                expires_at=expires_at or consultation.ends_at + self._tan_grace,
                consultation_id=consultation.id, mail=None if instant else facts,
            )
            await store.insert_participant(conn, consultation.id, now, invitation_id=new.invitation.id)
            invited.append(new)
        return invited

    async def reschedule(self, practice: Practice, consultation_id: int, plan: Appointment, *,
                         actor: int | None = None) -> Consultation:
        """New time or title; everyone gets a mail whose calendar entry replaces the old one."""
        async with self._engine.begin() as conn:
            before = await self._open(conn, practice.id, consultation_id)
            await store.reschedule(
                conn, consultation_id, title=plan.title, starts_at=plan.starts_at,
                duration_minutes=plan.duration_minutes, now=self._clock.now(),
            )
            consultation = await store.consultation_by_id(conn, consultation_id)
            assert consultation is not None
            await set_expiry_of_consultation(conn, consultation_id, consultation.ends_at + self._tan_grace)
            if consultation.starts_at != before.starts_at:
                await forget_reminders_of(conn, consultation_id)
            facts = self._facts(consultation, practice.name, await store.policy_of(conn, practice.id))
            for participant in await store.participants_of(conn, consultation_id):
                await self._mail(conn, "consultation_changed", participant, facts)
            await self._audit.record(conn, practice.id, actor, "consultation_changed", "consultation", consultation_id)
        return consultation

    async def cancel(self, practice: Practice, consultation_id: int, *, actor: int | None = None) -> Consultation:
        async with self._engine.begin() as conn:
            await self._open(conn, practice.id, consultation_id)
            await lifecycle.move(conn, consultation_id, Transition.CANCEL, self._clock.now())
            consultation = await store.consultation_by_id(conn, consultation_id)
            assert consultation is not None
            policy = await store.policy_of(conn, practice.id)
            facts = self._facts(consultation, practice.name, policy, cancelled=True)
            # Whoever needs a new appointment must call or write: the mail says how.
            contact = await practice_contact(conn, practice.id)
            for participant in await store.participants_of(conn, consultation_id):
                await self._mail(conn, "consultation_cancelled", participant, facts, extra={"contact": contact})
            await self._audit.record(conn, practice.id, actor, "consultation_cancelled", "consultation", consultation_id)
        return consultation

    async def _open(self, conn: AsyncConnection, practice_id: int, consultation_id: int) -> Consultation:
        """The consultation if it can still be changed: not running, ended or cancelled."""
        consultation = await store.consultation_of(conn, practice_id, consultation_id)
        if consultation is None:
            raise ConsultationNotFound(consultation_id)
        lifecycle.check(consultation.state, Transition.CHANGE)
        return consultation

    def _facts(self, consultation: Consultation, practice: str, policy: SchedulingPolicy, *,
               cancelled: bool = False) -> _MailFacts:
        return _MailFacts(consultation, practice, policy.time_zone, self._organizer, self._catalogs,
                          self._clock.now(), cancelled)

    async def _mail(self, conn: AsyncConnection, kind: str, participant: Participant, facts: _MailFacts, *,
                    with_calendar: bool = True, extra: dict | None = None) -> None:
        language = participant.language or "de"
        # Guests open their consultation by the invitation mail's link and TAN only.
        link = self._links.url("waiting_room", id=str(facts.consultation.id)) if participant.user_id else None
        await self._outbox.enqueue(
            conn, kind=kind, to=participant.email, language=language,
            context={"name": participant.display_name, "practice": facts.practice,
                     "when": facts.when(language), "link": link, **(extra or {})},
            calendar=facts.calendar(participant.email, language, link) if with_calendar else None,
        )

    async def mail_reminder(self, conn: AsyncConnection, consultation: Consultation, participant: Participant,
                            practice: str) -> None:
        facts = self._facts(consultation, practice, await store.policy_of(conn, consultation.practice_id))
        await self._mail(conn, "consultation_reminder", participant, facts, with_calendar=False)

    async def calendar_for_guest(self, consultation_id: int, practice: str, email: str, language: str) -> str | None:
        """The calendar file a guest adds from their invitation's page: the entry their
        invitation mail carried. None once the consultation is over or cancelled."""
        async with self._engine.connect() as conn:
            consultation = await store.consultation_by_id(conn, consultation_id)
            if consultation is None or consultation.state not in OPEN_STATES:
                return None
            policy = await store.policy_of(conn, consultation.practice_id)
        return self._facts(consultation, practice, policy).calendar(email, language, None, published=True)

    async def get(self, practice_id: int, consultation_id: int) -> ConsultationView:
        async with self._engine.connect() as conn:
            consultation = await store.consultation_of(conn, practice_id, consultation_id)
            if consultation is None:
                raise ConsultationNotFound(consultation_id)
            return ConsultationView(
                consultation, await store.participants_of(conn, consultation_id),
                await store.policy_of(conn, practice_id), await self._overlaps(conn, consultation),
            )

    @staticmethod
    async def _overlaps(conn: AsyncConnection, consultation: Consultation) -> tuple[Consultation, ...]:
        """What else the clinician holds while this one runs: a warning, not a refusal (a
        short call may well fit beside another)."""
        if consultation.clinician_id is None or consultation.state not in OPEN_STATES:
            return ()
        # One that began up to the longest duration earlier may still run.
        earlier = consultation.starts_at - timedelta(minutes=LONGEST_MINUTES)
        nearby = await store.consultations_between(conn, consultation.practice_id, earlier, consultation.ends_at,
                                                   clinician_id=consultation.clinician_id)
        return tuple(other for other in nearby
                     if other.id != consultation.id and other.state in OPEN_STATES
                     and other.ends_at > consultation.starts_at)

    async def day_views(self, practice_id: int, day: date) -> list[ConsultationView]:
        """A day's consultations with their participants, in three queries."""
        async with self._engine.connect() as conn:
            policy = await store.policy_of(conn, practice_id)
            start, end = day_bounds(day, 1, policy.time_zone)
            found = await store.consultations_between(conn, practice_id, start, end)
            people = await store.participants_of_each(conn, [consultation.id for consultation in found])
        return [ConsultationView(consultation, people[consultation.id], policy) for consultation in found]

    async def agenda(self, practice_id: int, first_day: date, days: int, *,
                     clinician_id: int | None = None) -> list[Consultation]:
        async with self._engine.connect() as conn:
            policy = await store.policy_of(conn, practice_id)
            start, end = day_bounds(first_day, days, policy.time_zone)
            return await store.consultations_between(conn, practice_id, start, end, clinician_id=clinician_id)

    async def headlines(self, practice_id: int, ids: set[int]) -> tuple[str, list[Consultation]]:
        """The practice's time zone and these of its consultations, for the live waiting list."""
        async with self._engine.connect() as conn:
            policy = await store.policy_of(conn, practice_id)
            return policy.time_zone, await store.consultations_of(conn, practice_id, ids)

    async def upcoming_for_patient(self, practice_id: int, user_id: int) -> list[Consultation]:
        async with self._engine.connect() as conn:
            return await store.upcoming_for_user(conn, practice_id, user_id, self._clock.now())

    async def is_clinician(self, practice_id: int, user_id: int) -> bool:
        """Whether the user may hold the practice's consultations (a clinician, or an admin
        who treats patients)."""
        async with self._engine.connect() as conn:
            return await treats_patients_in(conn, practice_id, user_id)

    async def past_calls(self, practice_id: int) -> list[PastCall]:
        """Every call still on record (the purge removes them after the retention period)."""
        now = self._clock.now()
        async with self._engine.connect() as conn:
            return await call_store.past_calls(conn, practice_id, now - timedelta(days=RECORDS_DAYS), now)
