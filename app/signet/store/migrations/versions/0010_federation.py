"""federation: one-time values of federated logins (OIDC nonces, SAML Assertion IDs)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('federation_spent',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_federation_spent'))
    )
    with op.batch_alter_table('federation_spent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_federation_spent_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('federation_spent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_federation_spent_expires_at'))
    op.drop_table('federation_spent')
