"""integration gateway: integrated applications, their nonces, per-minute request and refusal counters

Revision ID: e3b9f6a2c8d4
Revises: c67239011520
Create Date: 2026-11-28 12:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

# revision identifiers, used by Alembic.
revision: str = 'e3b9f6a2c8d4'
down_revision: Union[str, Sequence[str], None] = 'c67239011520'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('integration_apps',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('public_key_pem', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('key_version', sa.Integer(), nullable=False),
    sa.Column('sm4_key_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('scopes', sa.ARRAY(sa.String(length=32)), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('rate_limit_per_minute', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('integration_nonces',
    sa.Column('app_id', sa.String(length=40), nullable=False),
    sa.Column('nonce', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['app_id'], ['integration_apps.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('app_id', 'nonce')
    )
    op.create_index('ix_integration_nonces_expiry', 'integration_nonces', ['app_id', 'expires_at'], unique=False)
    op.create_table('integration_counters',
    sa.Column('app_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('app_id', 'kind', 'window_start')
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('integration_counters')
    op.drop_index('ix_integration_nonces_expiry', table_name='integration_nonces')
    op.drop_table('integration_nonces')
    op.drop_table('integration_apps')
