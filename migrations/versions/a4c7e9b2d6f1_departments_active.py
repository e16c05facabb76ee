"""departments can be disabled (禁用科室, 8.6.1 b)

A disabled department leaves the public catalogue; its doctors, visits and records stay.

Revision ID: a4c7e9b2d6f1
Revises: e6a1f3c5b7d9
Create Date: 2026-11-26 05:30:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = 'a4c7e9b2d6f1'
down_revision: Union[str, Sequence[str], None] = 'e6a1f3c5b7d9'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('departments', sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('departments', 'active')
