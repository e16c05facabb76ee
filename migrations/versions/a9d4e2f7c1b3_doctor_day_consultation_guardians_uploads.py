"""doctor's day: abort advice, consultants (会诊) and their opinions, guardians of children under six, revisit uploads

Revision ID: a9d4e2f7c1b3
Revises: b5e2c9a7d3f1
Create Date: 2026-11-29 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = 'a9d4e2f7c1b3'
down_revision: Union[str, Sequence[str], None] = 'b5e2c9a7d3f1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('visits', sa.Column('abort_advice', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.create_table('visit_consultants',
    sa.Column('visit_id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('doctor_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('invited_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('invited_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('opinion', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('opinion_signature', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('opinion_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], ),
    sa.ForeignKeyConstraint(['doctor_id'], ['doctors.id'], ),
    sa.ForeignKeyConstraint(['invited_by'], ['doctors.id'], ),
    sa.PrimaryKeyConstraint('visit_id', 'doctor_id')
    )
    op.create_index(op.f('ix_visit_consultants_doctor_id'), 'visit_consultants', ['doctor_id'], unique=False)
    op.create_table('visit_guardians',
    sa.Column('visit_id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('patient_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('guardian_name_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('guardian_id_card_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('guardian_id_card_index', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('relationship', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('physician_name_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('physician_licence_no', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('recorded_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], ),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.ForeignKeyConstraint(['recorded_by'], ['doctors.id'], ),
    sa.PrimaryKeyConstraint('visit_id')
    )
    op.create_index(op.f('ix_visit_guardians_patient_id'), 'visit_guardians', ['patient_id'], unique=False)
    op.create_index(
        op.f('ix_visit_guardians_guardian_id_card_index'), 'visit_guardians', ['guardian_id_card_index'], unique=False
    )
    op.create_table('revisit_uploads',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('patient_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('disease_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('sm3', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('data_enc', sa.LargeBinary(), nullable=False),
    sa.Column('visited_on', sa.Date(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('reviewed_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('review_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ledger_seq', sa.Integer(), nullable=True),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('image', 'pdf')", name='revisit_upload_kind'),
    sa.CheckConstraint("status IN ('pending', 'approved', 'rejected')", name='revisit_upload_status'),
    sa.CheckConstraint('size_bytes > 0', name='revisit_upload_size'),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.ForeignKeyConstraint(['disease_code'], ['diseases.code'], ),
    sa.ForeignKeyConstraint(['reviewed_by'], ['doctors.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_revisit_uploads_patient_disease', 'revisit_uploads', ['patient_id', 'disease_code'], unique=False)
    op.create_index(op.f('ix_revisit_uploads_status'), 'revisit_uploads', ['status'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f('ix_revisit_uploads_status'), table_name='revisit_uploads')
    op.drop_index('ix_revisit_uploads_patient_disease', table_name='revisit_uploads')
    op.drop_table('revisit_uploads')
    op.drop_index(op.f('ix_visit_guardians_guardian_id_card_index'), table_name='visit_guardians')
    op.drop_index(op.f('ix_visit_guardians_patient_id'), table_name='visit_guardians')
    op.drop_table('visit_guardians')
    op.drop_index(op.f('ix_visit_consultants_doctor_id'), table_name='visit_consultants')
    op.drop_table('visit_consultants')
    op.drop_column('visits', 'abort_advice')
