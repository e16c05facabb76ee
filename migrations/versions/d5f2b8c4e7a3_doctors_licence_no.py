"""doctors keep their practice licence number (医师执业证书编码)

The supervision platform identifies doctors by it (8.6.4); doctors approved before this get it from their
application.

Revision ID: d5f2b8c4e7a3
Revises: c3e8a1f6d2b9
Create Date: 2026-11-26 07:40:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = 'd5f2b8c4e7a3'
down_revision: Union[str, Sequence[str], None] = 'c3e8a1f6d2b9'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('doctors', sa.Column('licence_no', sa.String(length=32), nullable=True))
    op.execute(
        "UPDATE doctors d SET licence_no = a.licence_no FROM staff_applications a "
        "WHERE a.id = d.id AND a.status = 'approved'"
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('doctors', 'licence_no')
