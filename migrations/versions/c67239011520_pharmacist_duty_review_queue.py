"""pharmacist duty periods; review queue, forced and renewal columns on prescriptions

Revision ID: c67239011520
Revises: 08fc45cf9f1d
Create Date: 2026-11-26 14:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

# revision identifiers, used by Alembic.
revision: str = 'c67239011520'
down_revision: Union[str, Sequence[str], None] = '08fc45cf9f1d'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('pharmacist_duty',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pharmacist_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['pharmacist_id'], ['pharmacists.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_pharmacist_duty_pharmacist_id'), 'pharmacist_duty', ['pharmacist_id'], unique=False)
    op.create_index(op.f('ix_pharmacist_duty_ended_at'), 'pharmacist_duty', ['ended_at'], unique=False)
    op.create_index('pharmacist_duty_one_open', 'pharmacist_duty', ['pharmacist_id'], unique=True,
                    postgresql_where=sa.text('ended_at IS NULL'))
    op.add_column('prescriptions', sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('prescriptions', sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
    op.add_column('prescriptions', sa.Column('claim_expires_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('prescriptions', sa.Column('forced', sa.Boolean(), server_default='false', nullable=False))
    op.add_column('prescriptions', sa.Column('forced_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column('prescriptions', sa.Column('renewed_from', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    for column in ('renewed_from', 'forced_reason', 'forced', 'claim_expires_at', 'claimed_by', 'submitted_at'):
        op.drop_column('prescriptions', column)
    op.drop_index('pharmacist_duty_one_open', table_name='pharmacist_duty', postgresql_where=sa.text('ended_at IS NULL'))
    op.drop_index(op.f('ix_pharmacist_duty_ended_at'), table_name='pharmacist_duty')
    op.drop_index(op.f('ix_pharmacist_duty_pharmacist_id'), table_name='pharmacist_duty')
    op.drop_table('pharmacist_duty')
