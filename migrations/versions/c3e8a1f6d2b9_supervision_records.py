"""supervision_records: the platform's last answer per record sent (8.6.6)

Revision ID: c3e8a1f6d2b9
Revises: a4c7e9b2d6f1
Create Date: 2026-11-26 07:10:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = 'c3e8a1f6d2b9'
down_revision: Union[str, Sequence[str], None] = 'a4c7e9b2d6f1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'supervision_records',
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('record_id', sa.String(length=80), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('code', sa.String(length=40), nullable=True),
        sa.Column('reason', sa.String(), nullable=True),
        sa.Column('platform_ref', sa.String(length=64), nullable=False),
        sa.Column('sends', sa.Integer(), nullable=False),
        sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('revisit', 'prescription')", name='supervision_record_kind'),
        sa.CheckConstraint("status IN ('accepted', 'rejected')", name='supervision_record_status'),
        sa.PrimaryKeyConstraint('kind', 'record_id'),
    )
    op.create_index('ix_supervision_records_day', 'supervision_records', ['day', 'kind', 'status'])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_supervision_records_day', table_name='supervision_records')
    op.drop_table('supervision_records')
