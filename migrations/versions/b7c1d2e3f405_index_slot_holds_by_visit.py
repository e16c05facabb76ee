"""index slot holds by visit

Revision ID: b7c1d2e3f405
Revises: f4d624175548
Create Date: 2026-11-25 20:10:00.000000

"""
from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'b7c1d2e3f405'
down_revision: Union[str, Sequence[str], None] = 'f4d624175548'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index(op.f('ix_slots_visit_id'), 'slots', ['visit_id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f('ix_slots_visit_id'), table_name='slots')
