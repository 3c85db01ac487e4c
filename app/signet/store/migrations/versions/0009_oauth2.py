"""oauth2: registered clients, and authorization codes (used once)

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('oauth2_clients',
    sa.Column('id', sa.Integer(), sa.Identity(always=False), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('secret_hash', sa.String(length=256), nullable=True),
    sa.Column('redirect_uris', sa.Text(), nullable=False),
    sa.Column('seal', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth2_clients')),
    sa.UniqueConstraint('client_id', name=op.f('uq_oauth2_clients_client_id'))
    )
    op.create_table('oauth2_codes',
    sa.Column('id', sa.Integer(), sa.Identity(always=False), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('used', sa.Boolean(), nullable=False),
    sa.Column('grant', sa.Text(), nullable=True),
    sa.Column('access_token_hash', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_oauth2_codes_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth2_codes')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_oauth2_codes_code_hash'))
    )
    with op.batch_alter_table('oauth2_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth2_codes_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_oauth2_codes_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('oauth2_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth2_codes_user_id'))
        batch_op.drop_index(batch_op.f('ix_oauth2_codes_expires_at'))
    op.drop_table('oauth2_codes')
    op.drop_table('oauth2_clients')
