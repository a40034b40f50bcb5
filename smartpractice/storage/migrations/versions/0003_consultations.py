"""consultations, waiting room metadata, reminders, job leases

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_leases")),
    )
    op.create_table(
        "consultations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice_id", sa.Integer(), nullable=False),
        sa.Column("clinician_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("uid", sa.String(length=100), nullable=False),
        sa.Column("sequence", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinician_id"],
            ["users.id"],
            name=op.f("fk_consultations_clinician_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["practice_id"],
            ["practices.id"],
            name=op.f("fk_consultations_practice_id_practices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultations")),
        sa.UniqueConstraint("uid", name=op.f("uq_consultations_uid")),
    )
    with op.batch_alter_table("consultations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consultations_clinician_id"), ["clinician_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_consultations_practice_id"), ["practice_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_consultations_starts_at"), ["starts_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_consultations_state"), ["state"], unique=False)

    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice_id", sa.Integer(), nullable=False),
        sa.Column("consultation_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["consultation_id"],
            ["consultations.id"],
            name=op.f("fk_calls_consultation_id_consultations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["practice_id"],
            ["practices.id"],
            name=op.f("fk_calls_practice_id_practices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_calls_consultation_id"), ["consultation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_calls_practice_id"), ["practice_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_calls_started_at"), ["started_at"], unique=False)

    op.create_table(
        "attendances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("invitation_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("client_kind", sa.String(length=16), nullable=False),
        sa.Column("joined_at", sa.DateTime(), nullable=False),
        sa.Column("left_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_attendances_call_id_calls"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["invitations.id"],
            name=op.f("fk_attendances_invitation_id_invitations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_attendances_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendances")),
    )
    with op.batch_alter_table("attendances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attendances_call_id"), ["call_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_attendances_joined_at"), ["joined_at"], unique=False)

    op.create_table(
        "participants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consultation_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("invitation_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consultation_id"],
            ["consultations.id"],
            name=op.f("fk_participants_consultation_id_consultations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["invitations.id"],
            name=op.f("fk_participants_invitation_id_invitations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_participants_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participants")),
        sa.UniqueConstraint(
            "consultation_id", "user_id", name=op.f("uq_participants_consultation_id")
        ),
        sa.UniqueConstraint("invitation_id", name=op.f("uq_participants_invitation_id")),
    )
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_participants_consultation_id"), ["consultation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_participants_user_id"), ["user_id"], unique=False)

    op.create_table(
        "reminders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("lead_minutes", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_reminders_participant_id_participants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminders")),
        sa.UniqueConstraint(
            "participant_id", "lead_minutes", name=op.f("uq_reminders_participant_id")
        ),
    )
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("consultation_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_invitations_consultation_id"), ["consultation_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_invitations_consultation_id_consultations"),
            "consultations",
            ["consultation_id"],
            ["id"],
            ondelete="CASCADE",
        )

    with op.batch_alter_table("mails", schema=None) as batch_op:
        batch_op.add_column(sa.Column("calendar", sa.Text(), nullable=True))

    with op.batch_alter_table("practices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "time_zone", sa.String(length=64), server_default="Europe/Berlin", nullable=False
            )
        )
        batch_op.add_column(
            sa.Column("consultation_minutes", sa.Integer(), server_default="15", nullable=False)
        )
        batch_op.add_column(
            sa.Column("join_window_minutes", sa.Integer(), server_default="15", nullable=False)
        )
        batch_op.add_column(
            sa.Column("max_participants", sa.Integer(), server_default="4", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("practices", schema=None) as batch_op:
        batch_op.drop_column("max_participants")
        batch_op.drop_column("join_window_minutes")
        batch_op.drop_column("consultation_minutes")
        batch_op.drop_column("time_zone")

    with op.batch_alter_table("mails", schema=None) as batch_op:
        batch_op.drop_column("calendar")

    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_invitations_consultation_id_consultations"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_invitations_consultation_id"))
        batch_op.drop_column("consultation_id")

    op.drop_table("reminders")
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_participants_user_id"))
        batch_op.drop_index(batch_op.f("ix_participants_consultation_id"))

    op.drop_table("participants")
    with op.batch_alter_table("attendances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attendances_joined_at"))
        batch_op.drop_index(batch_op.f("ix_attendances_call_id"))

    op.drop_table("attendances")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calls_started_at"))
        batch_op.drop_index(batch_op.f("ix_calls_practice_id"))
        batch_op.drop_index(batch_op.f("ix_calls_consultation_id"))

    op.drop_table("calls")
    with op.batch_alter_table("consultations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consultations_state"))
        batch_op.drop_index(batch_op.f("ix_consultations_starts_at"))
        batch_op.drop_index(batch_op.f("ix_consultations_practice_id"))
        batch_op.drop_index(batch_op.f("ix_consultations_clinician_id"))

    op.drop_table("consultations")
    op.drop_table("job_leases")
