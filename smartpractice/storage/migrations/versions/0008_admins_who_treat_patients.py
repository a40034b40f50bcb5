"""admins who treat patients: a membership holds consultations and takes a seat apart from its role

Until now the role said both: a clinician treats patients, an admin administers. A founder
of a one-doctor practice is both, so `treats_patients` now says who holds consultations
(every clinician, an admin who chooses to) and `role` who administers.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.add_column(sa.Column('treats_patients', sa.Boolean(), server_default=sa.false(), nullable=False))
    # Existing members keep what they could do: clinicians treat patients, admins do not.
    memberships = sa.table('memberships', sa.column('role', sa.String), sa.column('treats_patients', sa.Boolean))
    op.execute(memberships.update().where(memberships.c.role == 'clinician').values(treats_patients=True))


def downgrade() -> None:
    # An admin who treated patients becomes an admin only; their consultations stay.
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.drop_column('treats_patients')
