"""auth security: session idle/auth times and scope on tokens, login throttle, second factors, permissions

Revision ID: 08fc45cf9f1d
Revises: d5e8a1c3b7f2
Create Date: 2026-11-28 10:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

# revision identifiers, used by Alembic.
revision: str = '08fc45cf9f1d'
down_revision: Union[str, Sequence[str], None] = 'd5e8a1c3b7f2'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The catalogue and role defaults as of this revision (models/permissions.py); later changes are data changes.
_PERMISSIONS = [
    ('patient.read', '查看患者档案'),
    ('record.read', '查看病历'),
    ('record.write', '书写病历'),
    ('rx.prescribe', '开具处方'),
    ('rx.review', '审核处方'),
    ('schedule.manage', '管理排班'),
    ('doctor.manage', '管理医生信息与收费'),
    ('refund.approve', '审批退款'),
    ('reconciliation.manage', '处理对账差错'),
    ('audit.read', '查询与导出审计日志'),
    ('permission.manage', '分配角色与人员权限'),
    ('account.manage', '管理账号（解锁等）'),
]
_ROLE_DEFAULTS = [
    ('doctor', 'patient.read'),
    ('doctor', 'record.read'),
    ('doctor', 'record.write'),
    ('doctor', 'rx.prescribe'),
    ('pharmacist', 'rx.review'),
    ('admin', 'schedule.manage'),
    ('admin', 'doctor.manage'),
    ('admin', 'audit.read'),
    ('admin', 'permission.manage'),
    ('admin', 'account.manage'),
    ('finance', 'refund.approve'),
    ('finance', 'reconciliation.manage'),
]


def upgrade() -> None:
    """Upgrade schema."""
    # Existing tokens count as used and authenticated now: they live out their absolute lifetime under the new rules.
    op.add_column('access_tokens', sa.Column('last_used_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False))
    op.add_column('access_tokens', sa.Column('auth_time', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False))
    op.add_column('access_tokens', sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(length=16), server_default='full', nullable=False))
    op.add_column('access_tokens', sa.Column('mfa_method', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))

    op.create_table('login_throttle',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('failures', sa.ARRAY(sa.DateTime(timezone=True)), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('mfa_factors',
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('totp_secret_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('totp_pending_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('totp_last_step', sa.Integer(), nullable=True),
    sa.Column('totp_enrolled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sms_phone_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('sms_enrolled_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('user_id')
    )
    op.create_table('mfa_challenges',
    sa.Column('id_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('code_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('code_sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sends', sa.Integer(), nullable=False),
    sa.Column('phone_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('consumed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id_hash')
    )
    op.create_index(op.f('ix_mfa_challenges_user_id'), 'mfa_challenges', ['user_id'], unique=False)
    permissions = op.create_table('permissions',
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    role_permissions = op.create_table('role_permissions',
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('permission', sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
    sa.Column('granted_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('granted_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['permission'], ['permissions.code'], ),
    sa.PrimaryKeyConstraint('role', 'permission')
    )
    op.create_table('user_permissions',
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('permission', sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('granted_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('granted_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.ForeignKeyConstraint(['permission'], ['permissions.code'], ),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('user_id', 'permission')
    )
    op.bulk_insert(permissions, [{'code': code, 'name': name} for code, name in _PERMISSIONS])
    op.bulk_insert(role_permissions, [{'role': role, 'permission': code} for role, code in _ROLE_DEFAULTS])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('user_permissions')
    op.drop_table('role_permissions')
    op.drop_table('permissions')
    op.drop_index(op.f('ix_mfa_challenges_user_id'), table_name='mfa_challenges')
    op.drop_table('mfa_challenges')
    op.drop_table('mfa_factors')
    op.drop_table('login_throttle')
    op.drop_column('access_tokens', 'mfa_method')
    op.drop_column('access_tokens', 'scope')
    op.drop_column('access_tokens', 'auth_time')
    op.drop_column('access_tokens', 'last_used_at')
