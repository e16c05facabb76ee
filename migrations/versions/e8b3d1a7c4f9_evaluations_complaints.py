"""evaluations and complaints (服务评价管理, 8.6.7), the permission to handle them, and the one to read statistics
(数据统计分析, 8.6.5)

Revision ID: e8b3d1a7c4f9
Revises: d5f2b8c4e7a3
Create Date: 2026-11-26 07:20:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = 'e8b3d1a7c4f9'
down_revision: Union[str, Sequence[str], None] = 'd5f2b8c4e7a3'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_PERMISSIONS = (('feedback.manage', '处理服务评价与投诉'), ('statistics.read', '查看统计分析'))


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'evaluations',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('visit_id', sa.String(length=80), nullable=False),
        sa.Column('patient_id', sa.String(length=40), nullable=False),
        sa.Column('doctor_id', sa.String(length=40), nullable=False),
        sa.Column('department_id', sa.String(length=40), nullable=False),
        sa.Column('doctor_rating', sa.Integer(), nullable=False),
        sa.Column('department_rating', sa.Integer(), nullable=False),
        sa.Column('hospital_rating', sa.Integer(), nullable=False),
        sa.Column('comment', sa.String(), nullable=False),
        sa.Column('visibility', sa.String(length=8), nullable=False),
        sa.Column('hidden_reason', sa.String(), nullable=True),
        sa.Column('hidden_by', sa.String(length=40), nullable=True),
        sa.Column('hidden_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('handling', sa.String(length=8), nullable=False),
        sa.Column('handled_by', sa.String(length=40), nullable=True),
        sa.Column('handled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('handling_note', sa.String(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint(
            'doctor_rating BETWEEN 1 AND 5 AND department_rating BETWEEN 1 AND 5 AND hospital_rating BETWEEN 1 AND 5',
            name='evaluation_ratings',
        ),
        sa.CheckConstraint("visibility IN ('public', 'hidden')", name='evaluation_visibility'),
        sa.CheckConstraint("handling IN ('none', 'pending', 'handled')", name='evaluation_handling'),
        sa.ForeignKeyConstraint(['visit_id'], ['visits.id']),
        sa.ForeignKeyConstraint(['patient_id'], ['patients.id']),
        sa.ForeignKeyConstraint(['doctor_id'], ['doctors.id']),
        sa.ForeignKeyConstraint(['department_id'], ['departments.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('visit_id'),
    )
    for column in ('patient_id', 'doctor_id', 'department_id', 'handling'):
        op.create_index(f'ix_evaluations_{column}', 'evaluations', [column])
    op.create_table(
        'complaints',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('patient_id', sa.String(length=40), nullable=False),
        sa.Column('subject_type', sa.String(length=16), nullable=False),
        sa.Column('subject_id', sa.String(length=80), nullable=False),
        sa.Column('category', sa.String(length=16), nullable=False),
        sa.Column('text', sa.String(), nullable=False),
        sa.Column('status', sa.String(length=8), nullable=False),
        sa.Column('response', sa.String(), nullable=True),
        sa.Column('responded_by', sa.String(length=40), nullable=True),
        sa.Column('responded_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("subject_type IN ('visit', 'prescription')", name='complaint_subject'),
        sa.CheckConstraint("status IN ('open', 'answered')", name='complaint_status'),
        sa.ForeignKeyConstraint(['patient_id'], ['patients.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_complaints_patient_id', 'complaints', ['patient_id'])
    op.create_index('ix_complaints_status', 'complaints', ['status'])
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
    op.drop_table('complaints')
    op.drop_table('evaluations')
