"""initial passwords must be changed at first sign-in; consult media digests on the evidence ledger

Revision ID: d7a3c9e1f5b2
Revises: b4e1c7d9a2f6
Create Date: 2026-11-25 23:30:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = 'd7a3c9e1f5b2'
down_revision: Union[str, Sequence[str], None] = 'b4e1c7d9a2f6'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    # Set for accounts created with an initial password (batch creation); cleared by the first password change.
    op.add_column(
        'users', sa.Column('must_change_password', sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    # The ledger entry of the image's or voice clip's SM3 digest; NULL for media stored before this revision.
    op.add_column('consult_media', sa.Column('ledger_seq', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('consult_media', 'ledger_seq')
    op.drop_column('users', 'must_change_password')
