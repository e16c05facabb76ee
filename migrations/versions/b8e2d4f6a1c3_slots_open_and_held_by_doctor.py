"""slots indexed by doctor for the open ones (by start) and the held ones (by hold expiry)

A refused booking offers the doctor's next free slots: the open ones in start order, and held ones whose hold lapsed.
Two partial indexes let that walk only such slots of that doctor, stopping at the first few, instead of every slot
the doctor ever had; at a release-time rush every refused attempt asks.

Revision ID: b8e2d4f6a1c3
Revises: cc3f49ca8931
Create Date: 2026-11-26 05:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = 'b8e2d4f6a1c3'
down_revision: Union[str, Sequence[str], None] = 'cc3f49ca8931'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    # Each builds under a lock that holds off writes to slots; on a large table build them CONCURRENTLY beforehand
    # under these names, and this step finds them there.
    op.create_index('ix_slots_doctor_open', 'slots', ['doctor_id', 'starts_at'], unique=False,
                    postgresql_where=sa.text("status = 'open'"), if_not_exists=True)
    op.create_index('ix_slots_doctor_held', 'slots', ['doctor_id', 'held_until'], unique=False,
                    postgresql_where=sa.text("status = 'held'"), if_not_exists=True)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_slots_doctor_held', table_name='slots')
    op.drop_index('ix_slots_doctor_open', table_name='slots')
