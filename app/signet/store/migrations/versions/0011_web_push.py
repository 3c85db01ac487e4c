"""web push: where Web Push reaches each Mobile ID device

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mobile_push_subscriptions',
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('endpoint', sa.Text(), nullable=False),
    sa.Column('p256dh', sa.String(length=128), nullable=False),
    sa.Column('auth', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['mobile_devices.id'], name=op.f('fk_mobile_push_subscriptions_device_id_mobile_devices')),
    sa.PrimaryKeyConstraint('device_id', name=op.f('pk_mobile_push_subscriptions'))
    )


def downgrade() -> None:
    op.drop_table('mobile_push_subscriptions')
