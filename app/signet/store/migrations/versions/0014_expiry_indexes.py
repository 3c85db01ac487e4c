"""expiry indexes: the prune of expired rows (signing.prune) finds them without a full scan

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

TABLES = ('access_tokens', 'refresh_tokens', 'sads', 'otp_challenges', 'mobile_requests')


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f'ix_{table}_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_expires_at'))
