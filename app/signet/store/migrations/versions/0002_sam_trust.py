"""the SAM's trust rests on HSM keys: sealed credentials, spent markers, bound one-time codes,
keyed audit records, login throttling

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('credentials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('epoch', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('activation_address', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('seal', sa.String(length=64), nullable=True))
    with op.batch_alter_table('sads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('spent', sa.Text(), server_default='', nullable=False))
    with op.batch_alter_table('otp_challenges', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose', sa.String(length=16),
                                      server_default='authorize', nullable=False))
        batch_op.add_column(sa.Column('binding', sa.Text(), nullable=True))
    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mac', sa.String(length=64), nullable=True))
    op.create_table('login_throttle',
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('blocked_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_login_throttle'))
    )


def downgrade() -> None:
    op.drop_table('login_throttle')
    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.drop_column('mac')
    with op.batch_alter_table('otp_challenges', schema=None) as batch_op:
        batch_op.drop_column('binding')
        batch_op.drop_column('purpose')
    with op.batch_alter_table('sads', schema=None) as batch_op:
        batch_op.drop_column('spent')
    with op.batch_alter_table('credentials', schema=None) as batch_op:
        batch_op.drop_column('seal')
        batch_op.drop_column('activation_address')
        batch_op.drop_column('epoch')
