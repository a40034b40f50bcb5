"""What the service holds for one practice, for its export (GDPR art. 20, and a practice
leaving the service). Every query is bound to the practice. Columns are named one by one:
hashes of passwords, tokens, TANs and API keys, second-factor secrets and invitation codes
are keys, not data, and never leave the database this way. The practice's registration code
does: the practice itself hands it to its patients (link and QR code), and the export is the
practice's own."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from smartpractice.storage.tables import (
    api_keys,
    attendances,
    audit_log,
    calls,
    consultations,
    invitations,
    memberships,
    participants,
    practices,
    reminders,
    staff_invitations,
    users,
)


def _rows(result) -> list[dict]:
    return [dict(row._mapping) for row in result]


PRACTICE_COLUMNS = ("id", "slug", "name", "kind", "address", "contact", "created_at", "confirmed_at", "suspended_at",
                    "seats", "max_seats")
SETTING_COLUMNS = ("time_zone", "consultation_minutes", "join_window_minutes", "max_participants", "tan_delivery",
                   "self_registration", "registration_code", "ask_date_of_birth", "relay_policy", "e2ee_policy",
                   "retention_days")


async def practice(conn: AsyncConnection, practice_id: int) -> tuple[dict, dict]:
    """The practice's record and its settings."""
    columns = [practices.c[name] for name in (*PRACTICE_COLUMNS, *SETTING_COLUMNS)]
    row = (await conn.execute(select(*columns).where(practices.c.id == practice_id))).one()._mapping
    return {name: row[name] for name in PRACTICE_COLUMNS}, {name: row[name] for name in SETTING_COLUMNS}


async def members(conn: AsyncConnection, practice_id: int) -> list[dict]:
    """Everyone with a membership: the account's data and the membership's."""
    query = (select(users.c.id.label("user_id"), users.c.username, users.c.display_name, users.c.email,
                    users.c.pending_email, users.c.language, users.c.date_of_birth,
                    users.c.created_at.label("account_created_at"), users.c.email_confirmed_at,
                    memberships.c.role, memberships.c.treats_patients, memberships.c.created_at.label("member_since"),
                    memberships.c.deactivated_at)
             .join(users, users.c.id == memberships.c.user_id)
             .where(memberships.c.practice_id == practice_id)
             .order_by(memberships.c.id))
    return _rows(await conn.execute(query))


async def consultations_of(conn: AsyncConnection, practice_id: int) -> list[dict]:
    """Consultations with their participants (account or TAN invitation, and the reminders
    mailed to them) and their calls (when, and who was in them from which kind of client)."""
    clinicians = users.alias("clinicians")
    query = (select(consultations.c.id, consultations.c.title, consultations.c.starts_at,
                    consultations.c.duration_minutes, consultations.c.state, consultations.c.clinician_id,
                    clinicians.c.username.label("clinician"), consultations.c.created_at, consultations.c.updated_at)
             .outerjoin(clinicians, clinicians.c.id == consultations.c.clinician_id)
             .where(consultations.c.practice_id == practice_id)
             .order_by(consultations.c.starts_at, consultations.c.id))
    found = _rows(await conn.execute(query))
    in_practice = select(consultations.c.id).where(consultations.c.practice_id == practice_id)

    sent: defaultdict[int, list[dict]] = defaultdict(list)
    for entry in _rows(await conn.execute(
            select(reminders.c.participant_id, reminders.c.lead_minutes, reminders.c.sent_at)
            .join(participants, participants.c.id == reminders.c.participant_id)
            .where(participants.c.consultation_id.in_(in_practice)).order_by(reminders.c.id))):
        sent[entry.pop("participant_id")].append(entry)

    people: defaultdict[int, list[dict]] = defaultdict(list)
    for entry in _rows(await conn.execute(
            select(participants.c.id, participants.c.consultation_id, participants.c.user_id, users.c.username,
                   participants.c.invitation_id, invitations.c.email.label("invitation_email"),
                   participants.c.created_at.label("added_at"))
            .outerjoin(users, users.c.id == participants.c.user_id)
            .outerjoin(invitations, invitations.c.id == participants.c.invitation_id)
            .where(participants.c.consultation_id.in_(in_practice)).order_by(participants.c.id))):
        participant_id, consultation_id = entry.pop("id"), entry.pop("consultation_id")
        people[consultation_id].append({**entry, "reminders": sent[participant_id]})

    present: defaultdict[int, list[dict]] = defaultdict(list)
    for entry in _rows(await conn.execute(
            select(attendances.c.call_id, attendances.c.user_id, attendances.c.invitation_id, attendances.c.role,
                   attendances.c.client_kind, attendances.c.joined_at, attendances.c.left_at)
            .join(calls, calls.c.id == attendances.c.call_id)
            .where(calls.c.practice_id == practice_id).order_by(attendances.c.id))):
        present[entry.pop("call_id")].append(entry)

    held: defaultdict[int, list[dict]] = defaultdict(list)
    for entry in _rows(await conn.execute(
            select(calls.c.id, calls.c.consultation_id, calls.c.started_at, calls.c.ended_at)
            .where(calls.c.practice_id == practice_id).order_by(calls.c.id))):
        call_id = entry.pop("id")
        held[entry.pop("consultation_id")].append({**entry, "attendances": present[call_id]})

    return [{**consultation, "participants": people[consultation["id"]], "calls": held[consultation["id"]]}
            for consultation in found]


async def invitations_of(conn: AsyncConnection, practice_id: int) -> list[dict]:
    """TAN invitations, without their link, TAN or code."""
    query = (select(invitations.c.id, invitations.c.consultation_id, invitations.c.email, invitations.c.display_name,
                    invitations.c.language, invitations.c.invited_by, invitations.c.created_at,
                    invitations.c.expires_at, invitations.c.tan_used_at, invitations.c.tan_failures,
                    invitations.c.locked_at, invitations.c.revoked_at)
             .where(invitations.c.practice_id == practice_id).order_by(invitations.c.id))
    return _rows(await conn.execute(query))


async def staff_invitations_of(conn: AsyncConnection, practice_id: int) -> list[dict]:
    query = (select(staff_invitations.c.id, staff_invitations.c.email, staff_invitations.c.role,
                    staff_invitations.c.invited_by, staff_invitations.c.created_at, staff_invitations.c.expires_at,
                    staff_invitations.c.accepted_at, staff_invitations.c.revoked_at)
             .where(staff_invitations.c.practice_id == practice_id).order_by(staff_invitations.c.id))
    return _rows(await conn.execute(query))


async def api_keys_of(conn: AsyncConnection, practice_id: int) -> list[dict]:
    """Names and dates; neither the key's hash nor its prefix (a piece of the key)."""
    query = (select(api_keys.c.id, api_keys.c.name, api_keys.c.created_at, api_keys.c.last_used_at,
                    api_keys.c.revoked_at)
             .where(api_keys.c.practice_id == practice_id).order_by(api_keys.c.id))
    return _rows(await conn.execute(query))


async def audit_of(conn: AsyncConnection, practice_id: int) -> list[dict]:
    query = (select(audit_log.c.id, audit_log.c.created_at, audit_log.c.actor_user_id,
                    users.c.username.label("actor"), audit_log.c.action, audit_log.c.object_kind,
                    audit_log.c.object_id)
             .outerjoin(users, users.c.id == audit_log.c.actor_user_id)
             .where(audit_log.c.practice_id == practice_id).order_by(audit_log.c.id))
    return _rows(await conn.execute(query))
