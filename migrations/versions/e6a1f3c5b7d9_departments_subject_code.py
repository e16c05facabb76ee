"""departments name the 诊疗科目 (diagnosis-and-treatment subject) of the physical hospital's licence they practise under

An internet hospital may not practise beyond the subjects registered for the institution it relies on; departments
that existed before are put under 中医科 (50), the subject every department of this hospital falls under, for an
admin to narrow.

Revision ID: e6a1f3c5b7d9
Revises: b8e2d4f6a1c3
Create Date: 2026-12-03 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

# revision identifiers, used by Alembic.
revision: str = 'e6a1f3c5b7d9'
down_revision: Union[str, Sequence[str], None] = 'b8e2d4f6a1c3'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    # The default only fills the rows already there; new departments always name their subject.
    op.add_column(
        'departments',
        sa.Column('subject_code', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default='50'),
    )
    op.alter_column('departments', 'subject_code', server_default=None)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('departments', 'subject_code')
