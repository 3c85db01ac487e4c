"""Mobile ID: the phones registered for credentials, and the requests waiting on them

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mobile_devices',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('credential_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=128), nullable=False),
    sa.Column('public_key', sa.Text(), nullable=False),
    sa.Column('attestation', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('seal', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['credential_id'], ['credentials.id'], name=op.f('fk_mobile_devices_credential_id_credentials')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mobile_devices_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mobile_devices'))
    )
    op.create_index(op.f('ix_mobile_devices_credential_id'), 'mobile_devices', ['credential_id'], unique=False)
    op.create_table('mobile_requests',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('credential_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('hash_algorithm', sa.String(length=64), nullable=True),
    sa.Column('hashes', sa.Text(), nullable=False),
    sa.Column('num_signatures', sa.Integer(), nullable=False),
    sa.Column('labels', sa.Text(), nullable=False),
    sa.Column('description', sa.String(length=512), nullable=True),
    sa.Column('origin', sa.String(length=320), nullable=False),
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('assurance', sa.Text(), nullable=False),
    sa.Column('content_mac', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('approval', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['credential_id'], ['credentials.id'], name=op.f('fk_mobile_requests_credential_id_credentials')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mobile_requests_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mobile_requests'))
    )
    op.create_index(op.f('ix_mobile_requests_credential_id'), 'mobile_requests', ['credential_id'], unique=False)
    op.create_index(op.f('ix_mobile_requests_device_id'), 'mobile_requests', ['device_id'], unique=False)
    op.create_index(op.f('ix_mobile_requests_state'), 'mobile_requests', ['state'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_mobile_requests_state'), table_name='mobile_requests')
    op.drop_index(op.f('ix_mobile_requests_device_id'), table_name='mobile_requests')
    op.drop_index(op.f('ix_mobile_requests_credential_id'), table_name='mobile_requests')
    op.drop_table('mobile_requests')
    op.drop_index(op.f('ix_mobile_devices_credential_id'), table_name='mobile_devices')
    op.drop_table('mobile_devices')
