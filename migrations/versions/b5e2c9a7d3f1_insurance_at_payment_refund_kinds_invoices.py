"""money: 医保 at payment (credentials, settlements, the 医保 part of bills and refunds), refund kinds and special
refund negotiations, e-invoices on bills

Revision ID: b5e2c9a7d3f1
Revises: f7c3a9d2e5b1
Create Date: 2026-11-29 12:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

# revision identifiers, used by Alembic.
revision: str = 'b5e2c9a7d3f1'
down_revision: Union[str, Sequence[str], None] = 'f7c3a9d2e5b1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('bills', sa.Column('insurance_fen', sa.Integer(), server_default='0', nullable=False))
    op.add_column('bills', sa.Column('insurance_refunded_fen', sa.Integer(), server_default='0', nullable=False))
    op.create_check_constraint(
        'bill_insurance_refund_whole', 'bills', 'insurance_refunded_fen IN (0, insurance_fen)'
    )
    for column, length in (
        ('invoice_code', 32), ('invoice_no', 32), ('invoice_check_code', 32), ('invoice_url', None),
        ('red_invoice_code', 32), ('red_invoice_no', 32),
    ):
        op.add_column('bills', sa.Column(column, _STR(length=length) if length else _STR(), nullable=True))
    op.add_column('bills', sa.Column('invoice_issued_at', sa.DateTime(timezone=True), nullable=True))

    op.add_column('refunds', sa.Column('kind', _STR(length=16), server_default='ordinary', nullable=False))
    op.add_column('refunds', sa.Column('reason_code', _STR(length=40), nullable=True))
    op.add_column('refunds', sa.Column('authorized_by', _STR(length=40), nullable=True))
    op.add_column('refunds', sa.Column('insurance_fen', sa.Integer(), server_default='0', nullable=False))
    op.add_column('refunds', sa.Column('final', sa.Boolean(), server_default='false', nullable=False))
    op.add_column('refunds', sa.Column('failure', _STR(), nullable=True))

    op.create_table('refund_negotiations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('refund_id', _STR(length=100), nullable=False),
    sa.Column('party', _STR(length=16), nullable=False),
    sa.Column('agreed', sa.Boolean(), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('note', _STR(), nullable=False),
    sa.Column('recorded_by', _STR(length=40), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['refund_id'], ['refunds.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_refund_negotiations_refund_id'), 'refund_negotiations', ['refund_id'], unique=False)

    op.create_table('insurance_credentials',
    sa.Column('bill_id', _STR(length=80), nullable=False),
    sa.Column('patient_id', _STR(), nullable=False),
    sa.Column('cert_type', _STR(length=2), nullable=False),
    sa.Column('cert_no_enc', _STR(), nullable=False),
    sa.Column('use_account', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.PrimaryKeyConstraint('bill_id')
    )
    op.create_index(op.f('ix_insurance_credentials_patient_id'), 'insurance_credentials', ['patient_id'], unique=False)

    op.create_table('insurance_settlements',
    sa.Column('bill_id', _STR(length=80), nullable=False),
    sa.Column('patient_id', _STR(), nullable=False),
    sa.Column('psn_no', _STR(length=40), nullable=False),
    sa.Column('insutype', _STR(length=6), nullable=False),
    sa.Column('insuplc_admdvs', _STR(length=6), nullable=False),
    sa.Column('mdtrt_id', _STR(length=40), nullable=False),
    sa.Column('ipt_otp_no', _STR(length=80), nullable=False),
    sa.Column('chrg_bchno', _STR(length=40), nullable=False),
    sa.Column('status', _STR(length=16), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('msgid', _STR(length=40), nullable=True),
    sa.Column('setl_id', _STR(length=40), nullable=True),
    sa.Column('total_fen', sa.Integer(), nullable=False),
    sa.Column('fund_fen', sa.Integer(), nullable=False),
    sa.Column('account_fen', sa.Integer(), nullable=False),
    sa.Column('cash_fen', sa.Integer(), nullable=False),
    sa.Column('clr_optins', _STR(length=6), nullable=True),
    sa.Column('clr_type', _STR(length=6), nullable=True),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_setl_id', _STR(length=40), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.PrimaryKeyConstraint('bill_id')
    )
    op.create_index(op.f('ix_insurance_settlements_patient_id'), 'insurance_settlements', ['patient_id'], unique=False)
    op.create_index(op.f('ix_insurance_settlements_status'), 'insurance_settlements', ['status'], unique=False)
    op.create_index(op.f('ix_insurance_settlements_setl_id'), 'insurance_settlements', ['setl_id'], unique=False)
    op.create_index(
        op.f('ix_insurance_settlements_settled_at'), 'insurance_settlements', ['settled_at'], unique=False
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('insurance_settlements')
    op.drop_table('insurance_credentials')
    op.drop_table('refund_negotiations')
    for column in ('failure', 'final', 'insurance_fen', 'authorized_by', 'reason_code', 'kind'):
        op.drop_column('refunds', column)
    for column in (
        'invoice_issued_at', 'red_invoice_no', 'red_invoice_code', 'invoice_url', 'invoice_check_code', 'invoice_no',
        'invoice_code',
    ):
        op.drop_column('bills', column)
    op.drop_constraint('bill_insurance_refund_whole', 'bills', type_='check')
    op.drop_column('bills', 'insurance_refunded_fen')
    op.drop_column('bills', 'insurance_fen')
