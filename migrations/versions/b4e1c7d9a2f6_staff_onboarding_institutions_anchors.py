"""staff onboarding, institution registration, liveness checks, ledger anchors; staff review and institution
permissions

Revision ID: b4e1c7d9a2f6
Revises: b5d7e9f1a3c6
Create Date: 2026-11-30 12:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = 'b4e1c7d9a2f6'
down_revision: Union[str, Sequence[str], None] = 'b5d7e9f1a3c6'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# New permissions (models/permissions.py) and the role that holds them by default.
_PERMISSIONS = [
    ('staff.review', '审核医生、药师注册与资质'),
    ('institution.manage', '医疗机构监管平台登记'),
]


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('staff_applications',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('affiliation', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('id_card_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('id_card_index', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('phone_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('department_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('licence_no', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('licence_date', sa.Date(), nullable=False),
    sa.Column('institution', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('checks', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("role IN ('doctor', 'pharmacist')", name='staff_application_role'),
    sa.CheckConstraint("status IN ('draft', 'checking', 'awaiting_review', 'approved', 'rejected')", name='staff_application_status'),
    sa.CheckConstraint("role = 'pharmacist' OR department_id IS NOT NULL", name='staff_application_department'),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('id_card_index'),
    sa.UniqueConstraint('user_id')
    )
    op.create_index(op.f('ix_staff_applications_status'), 'staff_applications', ['status'], unique=False)
    op.create_table('staff_documents',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('staff_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('sm3', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('data_enc', sa.LargeBinary(), nullable=False),
    sa.Column('uploaded_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('ledger_seq', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('id_photo', 'id_card', 'practice_licence', 'qualification', 'institution_licence', 'agreement')", name='staff_document_kind'),
    sa.CheckConstraint('size_bytes > 0', name='staff_document_size'),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_applications.id'], ),
    sa.ForeignKeyConstraint(['uploaded_by'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_staff_documents_staff_id'), 'staff_documents', ['staff_id'], unique=False)
    op.create_table('institutions',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('licence_no', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('access_ips', sa.ARRAY(sa.String(length=64)), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('platform_ref', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('verification', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('draft', 'submitted', 'approved', 'rejected')", name='institution_status'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_table('liveness_checks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('submission', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('token_digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('provider_ref', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('checked_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('patient_id', 'submission', 'token_digest', name='liveness_check_once')
    )
    op.create_index(op.f('ix_liveness_checks_patient_id'), 'liveness_checks', ['patient_id'], unique=False)
    op.create_table('ledger_anchors',
    sa.Column('size', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('chain', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('tx_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('block_height', sa.BigInteger(), nullable=True),
    sa.Column('anchored_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['size'], ['ledger_tree_heads.size'], ),
    sa.PrimaryKeyConstraint('size', 'chain')
    )
    # Append-only like the rest of the ledger (ledger_append_only() is the evidence_ledger migration's).
    op.execute(
        'CREATE TRIGGER ledger_anchors_append_only BEFORE UPDATE OR DELETE ON ledger_anchors '
        'FOR EACH ROW EXECUTE FUNCTION ledger_append_only()'
    )
    op.execute(
        'CREATE TRIGGER ledger_anchors_no_truncate BEFORE TRUNCATE ON ledger_anchors '
        'FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()'
    )
    permissions = sa.table('permissions', sa.column('code', sa.String), sa.column('name', sa.String))
    role_permissions = sa.table('role_permissions', sa.column('role', sa.String), sa.column('permission', sa.String))
    op.bulk_insert(permissions, [{'code': code, 'name': name} for code, name in _PERMISSIONS])
    op.bulk_insert(role_permissions, [{'role': 'admin', 'permission': code} for code, _ in _PERMISSIONS])


def downgrade() -> None:
    """Downgrade schema."""
    codes = ", ".join(f"'{code}'" for code, _ in _PERMISSIONS)
    op.execute(f"DELETE FROM user_permissions WHERE permission IN ({codes})")
    op.execute(f"DELETE FROM role_permissions WHERE permission IN ({codes})")
    op.execute(f"DELETE FROM permissions WHERE code IN ({codes})")
    op.drop_table('ledger_anchors')
    op.drop_index(op.f('ix_liveness_checks_patient_id'), table_name='liveness_checks')
    op.drop_table('liveness_checks')
    op.drop_table('institutions')
    op.drop_index(op.f('ix_staff_documents_staff_id'), table_name='staff_documents')
    op.drop_table('staff_documents')
    op.drop_index(op.f('ix_staff_applications_status'), table_name='staff_applications')
    op.drop_table('staff_applications')
