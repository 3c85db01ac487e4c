"""credentials' assurance policy: the level and factor kinds their signatures need

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing credentials keep what they had: no requirement beyond their own factor. Their
    # seals, made before the policy was sealed, still hold for "basic" (signet.sam.seals).
    with op.batch_alter_table('credentials') as batch_op:
        batch_op.add_column(
            sa.Column('policy', sa.String(length=32), server_default='basic', nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('credentials') as batch_op:
        batch_op.drop_column('policy')
