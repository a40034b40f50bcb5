"""the TAN path: invitation codes, what a newer mail replaced, one-time form tokens

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('form_submissions',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('object_kind', sa.String(length=40), nullable=True),
    sa.Column('object_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_form_submissions'))
    )
    with op.batch_alter_table('form_submissions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_form_submissions_created_at'), ['created_at'], unique=False)

    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('code', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('previous_link_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('previous_tan_hmac', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_invitations_previous_link_hash'), ['previous_link_hash'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_invitations_code'), ['code'])


def downgrade() -> None:
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_invitations_code'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_invitations_previous_link_hash'))
        batch_op.drop_column('previous_tan_hmac')
        batch_op.drop_column('previous_link_hash')
        batch_op.drop_column('code')

    with op.batch_alter_table('form_submissions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_form_submissions_created_at'))

    op.drop_table('form_submissions')
