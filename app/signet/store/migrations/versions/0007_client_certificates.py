"""client certificates registered to users (login by certificate, fingerprint mapping)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'client_certificates',
        sa.Column('id', sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('label', sa.String(length=128), nullable=False),
        sa.Column('subject', sa.String(length=512), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'], name=op.f('fk_client_certificates_user_id_users')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_client_certificates')),
        sa.UniqueConstraint('fingerprint', name=op.f('uq_client_certificates_fingerprint')),
    )
    op.create_index(
        op.f('ix_client_certificates_user_id'), 'client_certificates', ['user_id'], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f('ix_client_certificates_user_id'), table_name='client_certificates')
    op.drop_table('client_certificates')
