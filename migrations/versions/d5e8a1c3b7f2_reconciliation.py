"""reconciliation: channel statements and their lines, reconciliation runs and items

Revision ID: d5e8a1c3b7f2
Revises: 1d4147df3cbb
Create Date: 2026-11-26 12:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

# revision identifiers, used by Alembic.
revision: str = 'd5e8a1c3b7f2'
down_revision: Union[str, Sequence[str], None] = '1d4147df3cbb'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('channel_statements',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('bill_date', sa.Date(), nullable=False),
    sa.Column('downloaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('line_count', sa.Integer(), nullable=False),
    sa.Column('payment_count', sa.Integer(), nullable=False),
    sa.Column('refund_count', sa.Integer(), nullable=False),
    sa.Column('payment_total_fen', sa.BigInteger(), nullable=False),
    sa.Column('refund_total_fen', sa.BigInteger(), nullable=False),
    sa.Column('fee_total_fen', sa.BigInteger(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('channel', 'bill_date', name='channel_statement_day')
    )
    op.create_table('channel_statement_lines',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('statement_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('out_trade_no', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('out_refund_no', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('transaction_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('refund_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('fee_fen', sa.BigInteger(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('succeeded', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['statement_id'], ['channel_statements.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_channel_statement_lines_statement_id'), 'channel_statement_lines', ['statement_id'], unique=False)
    op.create_table('reconciliation_runs',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('bill_date', sa.Date(), nullable=False),
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('workflow_run_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('statement_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('matched_count', sa.Integer(), nullable=False),
    sa.Column('channel_only_count', sa.Integer(), nullable=False),
    sa.Column('platform_only_count', sa.Integer(), nullable=False),
    sa.Column('amount_mismatch_count', sa.Integer(), nullable=False),
    sa.Column('status_mismatch_count', sa.Integer(), nullable=False),
    sa.Column('open_count', sa.Integer(), nullable=False),
    sa.Column('channel_payment_fen', sa.BigInteger(), nullable=False),
    sa.Column('channel_refund_fen', sa.BigInteger(), nullable=False),
    sa.Column('platform_payment_fen', sa.BigInteger(), nullable=False),
    sa.Column('platform_refund_fen', sa.BigInteger(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['statement_id'], ['channel_statements.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('workflow_run_id', 'round', name='reconciliation_run_round')
    )
    op.create_index('ix_reconciliation_runs_day', 'reconciliation_runs', ['channel', 'bill_date'], unique=False)
    op.create_index(op.f('ix_reconciliation_runs_status'), 'reconciliation_runs', ['status'], unique=False)
    op.create_table('reconciliation_items',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('run_id', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('out_trade_no', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('out_refund_no', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('transaction_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('channel_amount_fen', sa.BigInteger(), nullable=True),
    sa.Column('platform_amount_fen', sa.BigInteger(), nullable=True),
    sa.Column('channel_status', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('platform_status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('channel_occurred_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('platform_occurred_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('line_count', sa.Integer(), nullable=False),
    sa.Column('resolution_state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('resolution', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('resolved_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution_note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['reconciliation_runs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_reconciliation_items_out_trade_no'), 'reconciliation_items', ['out_trade_no'], unique=False)
    op.create_index('ix_reconciliation_items_run_outcome', 'reconciliation_items', ['run_id', 'outcome'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_reconciliation_items_run_outcome', table_name='reconciliation_items')
    op.drop_index(op.f('ix_reconciliation_items_out_trade_no'), table_name='reconciliation_items')
    op.drop_table('reconciliation_items')
    op.drop_index(op.f('ix_reconciliation_runs_status'), table_name='reconciliation_runs')
    op.drop_index('ix_reconciliation_runs_day', table_name='reconciliation_runs')
    op.drop_table('reconciliation_runs')
    op.drop_index(op.f('ix_channel_statement_lines_statement_id'), table_name='channel_statement_lines')
    op.drop_table('channel_statement_lines')
    op.drop_table('channel_statements')
