"""reconciliation: differences only (matched counted on the run), source links, campuses, finance levels

Runs keep the matched count and amounts instead of one item per agreeing number; an item names its source line
(line_no in the run's statement) and the platform's bill or refund, and what the hospital is short by. A statement
line says whether its number repeats on another line (decided at download), so matching groups only those. A statement
belongs to the run that downloaded it (so a re-run never replaces lines an earlier run's items point at). Bills,
statements and runs get a campus. Permissions: reconciliation.read and reconciliation.write_off; finance staff start
as clerks (read), while those who could resolve differences before keep that as a personal grant.

Revision ID: f7c3a9d2e5b1
Revises: e3b9f6a2c8d4
Create Date: 2026-11-29 10:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

# revision identifiers, used by Alembic.
revision: str = 'f7c3a9d2e5b1'
down_revision: Union[str, Sequence[str], None] = 'e3b9f6a2c8d4'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_NEW_PERMISSIONS = [
    ('reconciliation.read', '查看与导出对账结果'),
    ('reconciliation.write_off', '核销坏账'),
]
_NEW_ROLE_DEFAULTS = [('finance', 'reconciliation.read'), ('admin', 'reconciliation.read')]


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('bills', sa.Column('campus', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))

    # A statement per run: ids as long as run ids, no longer one per channel and day.
    op.drop_constraint('channel_statement_day', 'channel_statements', type_='unique')
    for table, column in (
        ('channel_statements', 'id'),
        ('channel_statement_lines', 'statement_id'),
        ('reconciliation_runs', 'statement_id'),
    ):
        op.alter_column(table, column, type_=sqlmodel.sql.sqltypes.AutoString(length=60),
                        existing_type=sqlmodel.sql.sqltypes.AutoString(length=40))
    op.add_column('channel_statements', sa.Column('campus', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
    op.create_index('ix_channel_statements_day', 'channel_statements', ['channel', 'bill_date'], unique=False)
    op.drop_index(op.f('ix_channel_statement_lines_statement_id'), table_name='channel_statement_lines')
    op.create_unique_constraint('channel_statement_line_no', 'channel_statement_lines', ['statement_id', 'line_no'])
    op.add_column('channel_statement_lines', sa.Column('repeated', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index('ix_channel_statement_lines_repeated', 'channel_statement_lines', ['statement_id'], unique=False,
                    postgresql_where=sa.text('repeated'))

    op.add_column('reconciliation_runs', sa.Column('campus', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
    op.add_column('reconciliation_runs', sa.Column('matched_payment_fen', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('reconciliation_runs', sa.Column('matched_refund_fen', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('reconciliation_items', sa.Column('line_no', sa.Integer(), nullable=True))
    op.add_column('reconciliation_items', sa.Column('platform_record_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
    op.add_column('reconciliation_items', sa.Column('shortfall_fen', sa.BigInteger(), server_default='0', nullable=False))
    # Runs matched before this revision stored their agreeing numbers as items: total them on the run (the items
    # themselves stay, as everything reconciled is kept).
    op.execute("""
        UPDATE reconciliation_runs r
           SET matched_payment_fen = m.payment, matched_refund_fen = m.refund
          FROM (SELECT run_id,
                       COALESCE(sum(platform_amount_fen) FILTER (WHERE kind <> 'refund'), 0) AS payment,
                       COALESCE(sum(platform_amount_fen) FILTER (WHERE kind = 'refund'), 0) AS refund
                  FROM reconciliation_items WHERE outcome = 'matched' GROUP BY run_id) m
         WHERE m.run_id = r.id
    """)

    permissions = sa.table('permissions', sa.column('code', sa.String), sa.column('name', sa.String))
    role_permissions = sa.table('role_permissions', sa.column('role', sa.String), sa.column('permission', sa.String))
    op.bulk_insert(permissions, [{'code': code, 'name': name} for code, name in _NEW_PERMISSIONS])
    op.bulk_insert(role_permissions, [{'role': role, 'permission': code} for role, code in _NEW_ROLE_DEFAULTS])
    # Finance staff who could resolve differences through their role keep it personally (an admin's revocation of
    # it stays as it is); new finance staff are clerks until an admin makes them supervisors.
    op.execute("""
        INSERT INTO user_permissions (user_id, permission, granted, granted_by, reason)
        SELECT u.id, 'reconciliation.manage', true, NULL, '岗位级别启用前已可处理对账差错'
          FROM users u
         WHERE u.role = 'finance'
           AND EXISTS (SELECT FROM role_permissions
                        WHERE role = 'finance' AND permission = 'reconciliation.manage')
        ON CONFLICT (user_id, permission) DO NOTHING
    """)
    op.execute("DELETE FROM role_permissions WHERE role = 'finance' AND permission = 'reconciliation.manage'")


def downgrade() -> None:
    """Downgrade schema."""
    op.execute("""
        INSERT INTO role_permissions (role, permission) VALUES ('finance', 'reconciliation.manage')
        ON CONFLICT DO NOTHING
    """)
    op.execute("""
        DELETE FROM user_permissions
         WHERE permission = 'reconciliation.manage' AND granted AND granted_by IS NULL
           AND user_id IN (SELECT id FROM users WHERE role = 'finance')
    """)
    op.execute("DELETE FROM user_permissions WHERE permission IN ('reconciliation.read', 'reconciliation.write_off')")
    op.execute("DELETE FROM role_permissions WHERE permission IN ('reconciliation.read', 'reconciliation.write_off')")
    op.execute("DELETE FROM permissions WHERE code IN ('reconciliation.read', 'reconciliation.write_off')")

    op.drop_column('reconciliation_items', 'shortfall_fen')
    op.drop_column('reconciliation_items', 'platform_record_id')
    op.drop_column('reconciliation_items', 'line_no')
    op.drop_column('reconciliation_runs', 'matched_refund_fen')
    op.drop_column('reconciliation_runs', 'matched_payment_fen')
    op.drop_column('reconciliation_runs', 'campus')

    op.drop_index('ix_channel_statement_lines_repeated', table_name='channel_statement_lines')
    op.drop_column('channel_statement_lines', 'repeated')
    op.drop_constraint('channel_statement_line_no', 'channel_statement_lines', type_='unique')
    op.create_index(op.f('ix_channel_statement_lines_statement_id'), 'channel_statement_lines', ['statement_id'], unique=False)
    op.drop_index('ix_channel_statements_day', table_name='channel_statements')
    # Statements of several runs of one day cannot share the day again: each day keeps its newest (the older runs
    # lose their link to theirs). Ids longer than 40 characters (campus runs) cannot go back: such a database
    # cannot be downgraded past this revision.
    stale = """
        SELECT s.id FROM channel_statements s
         WHERE EXISTS (SELECT FROM channel_statements n
                        WHERE n.channel = s.channel AND n.bill_date = s.bill_date AND n.downloaded_at > s.downloaded_at)
    """
    op.execute(f"UPDATE reconciliation_runs SET statement_id = NULL WHERE statement_id IN ({stale})")
    op.execute(f"DELETE FROM channel_statements WHERE id IN ({stale})")
    op.drop_column('channel_statements', 'campus')
    for table, column in (
        ('reconciliation_runs', 'statement_id'),
        ('channel_statement_lines', 'statement_id'),
        ('channel_statements', 'id'),
    ):
        op.alter_column(table, column, type_=sqlmodel.sql.sqltypes.AutoString(length=40),
                        existing_type=sqlmodel.sql.sqltypes.AutoString(length=60))
    op.create_unique_constraint('channel_statement_day', 'channel_statements', ['channel', 'bill_date'])
    op.drop_column('bills', 'campus')
