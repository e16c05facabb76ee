"""signed medical records and addenda

Revision ID: c2d4e6f8a013
Revises: b7c1d2e3f405
Create Date: 2026-11-25 20:20:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = 'c2d4e6f8a013'
down_revision: Union[str, Sequence[str], None] = 'b7c1d2e3f405'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('medical_records', sa.Column('signature', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('medical_records', sa.Column('signed_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table('medical_record_addenda',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.String(length=80), nullable=False),
    sa.Column('doctor_id', sa.String(), nullable=False),
    sa.Column('text', sa.String(), nullable=False),
    sa.Column('written_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('signature', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.ForeignKeyConstraint(['doctor_id'], ['doctors.id'], ),
    sa.ForeignKeyConstraint(['visit_id'], ['medical_records.visit_id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_medical_record_addenda_visit_id'), 'medical_record_addenda', ['visit_id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f('ix_medical_record_addenda_visit_id'), table_name='medical_record_addenda')
    op.drop_table('medical_record_addenda')
    op.drop_column('medical_records', 'signed_at')
    op.drop_column('medical_records', 'signature')
