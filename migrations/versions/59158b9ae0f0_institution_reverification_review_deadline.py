"""institutions re-verified and suspended; staff applications' review deadline and escalation

Revision ID: 59158b9ae0f0
Revises: d7a3c9e1f5b2
Create Date: 2026-11-26 02:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '59158b9ae0f0'
down_revision: Union[str, Sequence[str], None] = 'd7a3c9e1f5b2'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.drop_constraint('institution_status', 'institutions', type_='check')
    op.create_check_constraint(
        'institution_status', 'institutions', "status IN ('draft', 'submitted', 'approved', 'rejected', 'suspended')"
    )
    op.add_column('institutions', sa.Column('suspended_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table('institution_reverifications',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('institution_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('requested_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('verified', sa.Boolean(), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('platform_record', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('status_before', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('status_after', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(
        op.f('ix_institution_reverifications_institution_id'), 'institution_reverifications', ['institution_id'],
        unique=False,
    )
    op.add_column('staff_applications', sa.Column('review_due_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('staff_applications', sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('staff_applications', 'escalated_at')
    op.drop_column('staff_applications', 'review_due_at')
    op.drop_index(op.f('ix_institution_reverifications_institution_id'), table_name='institution_reverifications')
    op.drop_table('institution_reverifications')
    op.drop_column('institutions', 'suspended_at')
    op.drop_constraint('institution_status', 'institutions', type_='check')
    op.execute("UPDATE institutions SET status = 'rejected' WHERE status = 'suspended'")
    op.create_check_constraint(
        'institution_status', 'institutions', "status IN ('draft', 'submitted', 'approved', 'rejected')"
    )
