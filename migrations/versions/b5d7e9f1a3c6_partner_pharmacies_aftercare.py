"""partner pharmacies and their staff, routing and re-check on fulfilments, the patient's pharmacy choice,
adverse reaction reports

Revision ID: b5d7e9f1a3c6
Revises: a9d4e2f7c1b3
Create Date: 2026-12-02 10:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = 'b5d7e9f1a3c6'
down_revision: Union[str, Sequence[str], None] = 'a9d4e2f7c1b3'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('partner_pharmacies',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('adapter', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('regions', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('delivers', sa.Boolean(), nullable=False),
    sa.Column('pickup', sa.Boolean(), nullable=False),
    sa.Column('decoction', sa.Boolean(), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('pharmacy_staff',
    sa.Column('pharmacist_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('pharmacy_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('assigned_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['pharmacist_id'], ['pharmacists.id'], ),
    sa.ForeignKeyConstraint(['pharmacy_id'], ['partner_pharmacies.id'], ),
    sa.PrimaryKeyConstraint('pharmacist_id')
    )
    op.create_index(op.f('ix_pharmacy_staff_pharmacy_id'), 'pharmacy_staff', ['pharmacy_id'], unique=False)
    op.create_table('sandbox_partner_stock',
    sa.Column('pharmacy_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('herb', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('stock_g', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('pharmacy_id', 'herb')
    )
    op.create_table('adverse_reaction_reports',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('prescription_id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('patient_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('severity', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('symptoms', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('began_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('overdue', sa.Boolean(), nullable=False),
    sa.Column('responded_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('response_action', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('response_advice', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('responded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reported_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.ForeignKeyConstraint(['prescription_id'], ['prescriptions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_adverse_reaction_reports_patient_id'), 'adverse_reaction_reports', ['patient_id'], unique=False)
    op.create_index(op.f('ix_adverse_reaction_reports_prescription_id'), 'adverse_reaction_reports', ['prescription_id'], unique=False)
    op.create_index(op.f('ix_adverse_reaction_reports_stage'), 'adverse_reaction_reports', ['stage'], unique=False)
    op.add_column('fulfilments', sa.Column('pharmacy_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
    op.add_column('fulfilments', sa.Column('pharmacy_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column('fulfilments', sa.Column('recheck', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('fulfilments', sa.Column('refill_remind_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f('ix_fulfilments_pharmacy_id'), 'fulfilments', ['pharmacy_id'], unique=False)
    op.add_column('prescriptions', sa.Column('pharmacy_choice', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
    op.add_column('prescriptions', sa.Column('decoction_service', sa.Boolean(), server_default='false', nullable=False))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('prescriptions', 'decoction_service')
    op.drop_column('prescriptions', 'pharmacy_choice')
    op.drop_index(op.f('ix_fulfilments_pharmacy_id'), table_name='fulfilments')
    op.drop_column('fulfilments', 'refill_remind_at')
    op.drop_column('fulfilments', 'recheck')
    op.drop_column('fulfilments', 'pharmacy_reason')
    op.drop_column('fulfilments', 'pharmacy_id')
    op.drop_index(op.f('ix_adverse_reaction_reports_stage'), table_name='adverse_reaction_reports')
    op.drop_index(op.f('ix_adverse_reaction_reports_prescription_id'), table_name='adverse_reaction_reports')
    op.drop_index(op.f('ix_adverse_reaction_reports_patient_id'), table_name='adverse_reaction_reports')
    op.drop_table('adverse_reaction_reports')
    op.drop_table('sandbox_partner_stock')
    op.drop_index(op.f('ix_pharmacy_staff_pharmacy_id'), table_name='pharmacy_staff')
    op.drop_table('pharmacy_staff')
    op.drop_table('partner_pharmacies')
