"""passkeys: a registered device is a phone (Mobile ID) or a WebAuthn credential

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mobile_devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='mobile', nullable=False))
        batch_op.add_column(sa.Column('webauthn_id', sa.String(length=1400), nullable=True))
        batch_op.add_column(sa.Column('sign_count', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('mobile_devices', schema=None) as batch_op:
        batch_op.drop_column('sign_count')
        batch_op.drop_column('webauthn_id')
        batch_op.drop_column('kind')
