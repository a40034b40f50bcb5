"""onboarding: link tokens, invitations, mail outbox, API keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mails")),
        sa.UniqueConstraint("message_id", name=op.f("uq_mails_message_id")),
    )
    with op.batch_alter_table("mails", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mails_next_attempt_at"), ["next_attempt_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_mails_status"), ["status"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["practice_id"],
            ["practices.id"],
            name=op.f("fk_api_keys_practice_id_practices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_practice_id"), ["practice_id"], unique=False)

    op.create_table(
        "invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice_id", sa.Integer(), nullable=False),
        sa.Column("invited_by", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("link_hash", sa.String(length=64), nullable=False),
        sa.Column("tan_hmac", sa.String(length=64), nullable=False),
        sa.Column("tan_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("tan_used_at", sa.DateTime(), nullable=True),
        sa.Column("locked_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["invited_by"],
            ["users.id"],
            name=op.f("fk_invitations_invited_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["practice_id"],
            ["practices.id"],
            name=op.f("fk_invitations_practice_id_practices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint("link_hash", name=op.f("uq_invitations_link_hash")),
    )
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invitations_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_invitations_practice_id"), ["practice_id"], unique=False
        )

    op.create_table(
        "link_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_link_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_link_tokens_token_hash")),
    )
    with op.batch_alter_table("link_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_link_tokens_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_link_tokens_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("login_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("invitation_id", sa.Integer(), nullable=True))
        batch_op.alter_column("user_id", existing_type=sa.INTEGER(), nullable=True)
        batch_op.create_index(
            batch_op.f("ix_login_sessions_invitation_id"), ["invitation_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_login_sessions_invitation_id_invitations"),
            "invitations",
            ["invitation_id"],
            ["id"],
            ondelete="CASCADE",
        )

    with op.batch_alter_table("practices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tan_delivery", sa.String(length=16), server_default="mail", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "self_registration", sa.Boolean(), server_default=sa.true(), nullable=False
            )
        )
        batch_op.add_column(sa.Column("registration_code", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column(
                "ask_date_of_birth", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_practices_registration_code"), ["registration_code"]
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("date_of_birth", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("date_of_birth")

    with op.batch_alter_table("practices", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_practices_registration_code"), type_="unique")
        batch_op.drop_column("ask_date_of_birth")
        batch_op.drop_column("registration_code")
        batch_op.drop_column("self_registration")
        batch_op.drop_column("tan_delivery")

    with op.batch_alter_table("login_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_login_sessions_invitation_id_invitations"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_login_sessions_invitation_id"))
        batch_op.alter_column("user_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("invitation_id")

    with op.batch_alter_table("link_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_link_tokens_user_id"))
        batch_op.drop_index(batch_op.f("ix_link_tokens_expires_at"))

    op.drop_table("link_tokens")
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invitations_practice_id"))
        batch_op.drop_index(batch_op.f("ix_invitations_expires_at"))

    op.drop_table("invitations")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_practice_id"))

    op.drop_table("api_keys")
    with op.batch_alter_table("mails", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mails_status"))
        batch_op.drop_index(batch_op.f("ix_mails_next_attempt_at"))

    op.drop_table("mails")
