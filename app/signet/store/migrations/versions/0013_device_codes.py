"""device codes: the OAuth 2.0 device authorization grant (RFC 8628)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('oauth2_device_codes',
    sa.Column('id', sa.Integer(), sa.Identity(always=False), nullable=False),
    sa.Column('device_code_hash', sa.String(length=64), nullable=False),
    sa.Column('user_code_hash', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('approval', sa.Text(), nullable=True),
    sa.Column('poll_interval', sa.Integer(), nullable=False),
    sa.Column('last_poll_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('access_token_hash', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_oauth2_device_codes_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth2_device_codes')),
    sa.UniqueConstraint('device_code_hash', name=op.f('uq_oauth2_device_codes_device_code_hash')),
    sa.UniqueConstraint('user_code_hash', name=op.f('uq_oauth2_device_codes_user_code_hash'))
    )
    with op.batch_alter_table('oauth2_device_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth2_device_codes_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_oauth2_device_codes_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('oauth2_device_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth2_device_codes_user_id'))
        batch_op.drop_index(batch_op.f('ix_oauth2_device_codes_expires_at'))
    op.drop_table('oauth2_device_codes')
