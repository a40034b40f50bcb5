"""The schema, as SQLAlchemy Core tables. Every change here needs a migration."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    true,
)

from smartpractice.storage.column_types import UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


ROLES = ("admin", "clinician", "patient")
STAFF_ROLES = ("admin", "clinician")

practices = Table(
    "practices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # "mail": the TAN travels with the link; "clinician": shown to the clinician only,
    # who passes it on by phone (email alone is not a second factor, NIST SP 800-63B).
    Column("tan_delivery", String(16), nullable=False, server_default="mail"),
    Column("self_registration", Boolean, nullable=False, server_default=true()),
    # Printed on posters and in QR codes, so it is kept readable; a new one replaces it.
    Column("registration_code", String(32), nullable=True, unique=True),
    Column("ask_date_of_birth", Boolean, nullable=False, server_default=false()),
    # IANA name; times are stored in UTC and shown in this zone.
    Column("time_zone", String(64), nullable=False, server_default="Europe/Berlin"),
    Column("consultation_minutes", Integer, nullable=False, server_default="15"),
    # How long before the start a participant may enter the waiting room.
    Column("join_window_minutes", Integer, nullable=False, server_default="15"),
    Column("max_participants", Integer, nullable=False, server_default="4"),  # besides the clinician
    # Practice administration (issue 7): who the practice is, its policy, its plan.
    Column("kind", String(32), nullable=False, server_default="single"),
    Column("address", String(500), nullable=False, server_default=""),
    Column("contact", String(254), nullable=False, server_default=""),
    # Choices in practices/settings.py: RELAY_POLICIES, E2EE_POLICIES (docs/e2ee.md).
    Column("relay_policy", String(16), nullable=False, server_default="p2p"),
    Column("e2ee_policy", String(16), nullable=False, server_default="require"),
    # NULL: the site's retention period; a practice may only shorten it.
    Column("retention_days", Integer, nullable=True),
    Column("seats", Integer, nullable=False, server_default="1"),
    # NULL: the site's self-service ceiling; the operator may set a practice's own.
    Column("max_seats", Integer, nullable=True),
    # NULL until the first admin confirmed their address: a signed-up practice cannot act before.
    Column("confirmed_at", UTCDateTime, nullable=True),
    Column("suspended_at", UTCDateTime, nullable=True),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    # Lower-cased copies carry the unique constraints so "Anna" and "anna" are one user.
    Column("username", String(64), nullable=False),
    Column("username_key", String(64), nullable=False, unique=True),
    Column("email", String(254), nullable=False),
    Column("email_key", String(254), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("password_hash", Text, nullable=True),
    Column("password_changed_at", UTCDateTime, nullable=True),
    Column("must_change_password", Boolean, nullable=False, default=False),
    Column("initial_password_expires_at", UTCDateTime, nullable=True),
    Column("email_confirmed_at", UTCDateTime, nullable=True),
    # An address the user asked to change to; it replaces `email` once its link is followed.
    Column("pending_email", String(254), nullable=True),
    # NULL until the user chooses: pages follow their browser, mails go in German.
    Column("language", String(8), nullable=True),
    Column("date_of_birth", Date, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    # The site's operator: sees every practice and the whole audit log.
    Column("is_operator", Boolean, nullable=False, server_default=false()),
)

memberships = Table(
    "memberships",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("practice_id", ForeignKey("practices.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("role", String(16), nullable=False),  # admin, clinician or patient
    Column("treats_patients", Boolean, nullable=False, server_default=false()),  # holds consultations, takes a seat
    Column("created_at", UTCDateTime, nullable=False),
    # A deactivated member keeps their history but reaches nothing of the practice.
    Column("deactivated_at", UTCDateTime, nullable=True),
    UniqueConstraint("practice_id", "user_id"),
)

login_sessions = Table(
    "login_sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    # SHA-256 of the cookie value; the value itself is never stored.
    Column("token_hash", String(64), nullable=False, unique=True),
    # A guest who logged in with a TAN has no user, only the invitation.
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("invitation_id", ForeignKey("invitations.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
    Column("user_agent", String(200), nullable=False, default=""),
    # True after the password until the second factor is given (or enrolled).
    Column("needs_second_factor", Boolean, nullable=False, server_default=false()),
)

link_tokens = Table(
    "link_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("purpose", String(32), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
    Column("used_at", UTCDateTime, nullable=True),
)

invitations = Table(
    "invitations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("practice_id", ForeignKey("practices.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("invited_by", ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("email", String(254), nullable=False),
    Column("display_name", String(200), nullable=False),
    Column("language", String(8), nullable=False),
    Column("link_hash", String(64), nullable=False, unique=True),
    # HMAC of the TAN under the server secret: a TAN has few bits, a plain hash would
    # fall to a dictionary in seconds if the database leaked.
    Column("tan_hmac", String(64), nullable=False),
    Column("tan_failures", Integer, nullable=False, server_default="0"),
    Column("total_failures", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
    Column("tan_used_at", UTCDateTime, nullable=True),
    Column("locked_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    # NULL for an ad-hoc invitation; else the consultation the guest may join.
    Column("consultation_id", ForeignKey("consultations.id", ondelete="CASCADE"), nullable=True, index=True),
    # The code in the mail that "Log in with TAN" takes with the TAN: like a user name it only
    # finds the invitation (the TAN proves the guest), so it is kept readable. NULL: older ones.
    Column("code", String(16), nullable=True, unique=True),
    # The link and TAN a newer mail replaced, so that an old mail is told what happened.
    Column("previous_link_hash", String(64), nullable=True, index=True),
    Column("previous_tan_hmac", String(64), nullable=True),
)

mails = Table(
    "mails",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("recipient", String(254), nullable=False),
    Column("subject", String(300), nullable=False),
    # Bodies are blanked once the mail is sent: they hold links and codes.
    Column("text_body", Text, nullable=False),
    Column("html_body", Text, nullable=False),
    Column("message_id", String(200), nullable=False, unique=True),
    # pending -> sending -> sent; or back to pending after a refusal; failed after the
    # last try; uncertain when the server stopped mid-send (never resent automatically).
    Column("status", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime, nullable=False, index=True),
    Column("claimed_at", UTCDateTime, nullable=True),
    Column("last_error", String(300), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    # An iCalendar attachment (RFC 5545/5546), blanked with the bodies once sent.
    Column("calendar", Text, nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("practice_id", ForeignKey("practices.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("prefix", String(12), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
)

throttles = Table(
    "throttles",
    metadata,
    # "account:<id>", "name:<hmac>", "address:<hmac>", "pair:<account or name>:<hmac>",
    # "device:<id>:<nonce>", and the same with a purpose prefix ("reset:", "confirm:",
    # "register:"); never a plain name or address.
    Column("key", String(100), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_started_at", UTCDateTime, nullable=False),
    Column("locked_until", UTCDateTime, nullable=True),
)

class ConsultationState(StrEnum):
    """The values of `consultations.state`; how one becomes another is in scheduling/lifecycle.py."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    ENDED = "ended"
    CANCELLED = "cancelled"



consultations = Table(
    "consultations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("practice_id", ForeignKey("practices.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("clinician_id", ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True),
    Column("title", String(200), nullable=False),
    Column("starts_at", UTCDateTime, nullable=False, index=True),
    Column("duration_minutes", Integer, nullable=False),
    Column("state", String(16), nullable=False, index=True),
    # The iCalendar UID and SEQUENCE: calendars update the entry instead of adding one.
    Column("uid", String(100), nullable=False, unique=True),
    Column("sequence", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

participants = Table(
    "participants",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("consultation_id", ForeignKey("consultations.id", ondelete="CASCADE"), nullable=False, index=True),
    # A patient with an account, or a person invited by mail with a TAN: one of the two.
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("invitation_id", ForeignKey("invitations.id", ondelete="CASCADE"), nullable=True, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("consultation_id", "user_id"),
)

reminders = Table(
    "reminders",
    metadata,
    # One row per participant and lead time, written with the reminder's mail: the
    # unique constraint is what makes a reminder go out once, across restarts.
    Column("id", Integer, primary_key=True),
    Column("participant_id", ForeignKey("participants.id", ondelete="CASCADE"), nullable=False),
    Column("lead_minutes", Integer, nullable=False),
    Column("sent_at", UTCDateTime, nullable=False),
    UniqueConstraint("participant_id", "lead_minutes"),
)

# Session metadata (what the purge deletes after the retention period): when a call ran,
# and who was in it when from which kind of client. Nothing about content.
calls = Table(
    "calls",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("practice_id", ForeignKey("practices.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("consultation_id", ForeignKey("consultations.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("started_at", UTCDateTime, nullable=False, index=True),
    Column("ended_at", UTCDateTime, nullable=True),
)

attendances = Table(
    "attendances",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("call_id", ForeignKey("calls.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("user_id", ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("invitation_id", ForeignKey("invitations.id", ondelete="SET NULL"), nullable=True),
    Column("role", String(16), nullable=False),
    # "desktop", "mobile" or "app": a class of client, never the User-Agent itself.
    Column("client_kind", String(16), nullable=False),
    Column("joined_at", UTCDateTime, nullable=False, index=True),
    Column("left_at", UTCDateTime, nullable=True),
)

form_submissions = Table(
    "form_submissions",
    metadata,
    # SHA-256 of user and one-time token of a form that creates something: sent again (a
    # reload, a double click), it leads to what the first sending made. Purged after a day.
    Column("key", String(64), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False, index=True),
    Column("object_kind", String(40), nullable=True),
    Column("object_id", Integer, nullable=True),
)

instance_leases = Table(
    "instance_leases",
    metadata,
    # Something of this database only one server instance may hold at a time: the waiting
    # rooms and calls an instance without Redis keeps in its memory (rooms/memory_lease.py).
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    # Where the holder runs (host and process), for the message that refuses a second one.
    Column("description", String(200), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    # Counts every renewal: a waiting instance sees a living holder by it, whatever the clocks say.
    Column("renewals", Integer, nullable=False, server_default="0"),
)

job_leases = Table(
    "job_leases",
    metadata,
    # One row per periodic job: whoever holds an unexpired lease runs it, so that of
    # several server instances only one purges or sends reminders at a time.
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

second_factors = Table(
    "second_factors",
    metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    # Base32 TOTP secrets (RFC 6238). The server must read them to check codes, so they
    # cannot be hashed; see docs/security.md.
    Column("secret", String(64), nullable=True),
    # A secret being enrolled: it replaces `secret` only once a code from it was given.
    Column("pending_secret", String(64), nullable=True),
    Column("enrolled_at", UTCDateTime, nullable=True),
    # The last 30-second step whose code was accepted; a code is never accepted twice.
    Column("last_used_step", Integer, nullable=True),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("code_hmac", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
)

staff_invitations = Table(
    "staff_invitations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("practice_id", ForeignKey("practices.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("invited_by", ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("email", String(254), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
    Column("accepted_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    # NULL for site-wide actions of the operator.
    Column("practice_id", ForeignKey("practices.id", ondelete="CASCADE"), nullable=True, index=True),
    # NULL when practice software acted with an API key, or the actor was deleted.
    Column("actor_user_id", ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    # An open set of names (docs/security.md); never health content.
    Column("action", String(40), nullable=False),
    Column("object_kind", String(40), nullable=False, server_default=""),
    Column("object_id", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False, index=True),
)

offer_requests = Table(
    "offer_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("practice_name", String(200), nullable=False),
    Column("email", String(254), nullable=False),
    Column("phone", String(50), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, index=True),
)
