"""refresh token clients: the OAuth 2.0 client a token endpoint's refresh token was issued to,
and the access token issued with one found without a full scan (revocation by the client)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('client_id', sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f('ix_refresh_tokens_access_token_hash'), ['access_token_hash'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refresh_tokens_access_token_hash'))
        batch_op.drop_column('client_id')
