"""money: 医保移动支付 (the mobile payment path: credentials without a token, the patient's authorization, the order
of a mobile settlement) and partial refunds beyond the self-pay part (the 医保 part of a bill no longer goes back
only whole: after a re-settlement the part the new settlement covers stays)

Revision ID: 0a5965dc64d5
Revises: 427070b54409
Create Date: 2026-11-30 12:00:00.000000

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

# revision identifiers, used by Alembic.
revision: str = "0a5965dc64d5"
down_revision: Union[str, Sequence[str], None] = '427070b54409'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    """Upgrade schema."""
    op.alter_column("insurance_credentials", "cert_no_enc", existing_type=_STR(), nullable=True)
    op.add_column("insurance_credentials", sa.Column("mobile", sa.Boolean(), server_default="false", nullable=False))
    op.add_column("insurance_credentials", sa.Column("pay_auth_no_enc", _STR(), nullable=True))
    op.add_column("insurance_credentials", sa.Column("authorized_at", sa.DateTime(timezone=True), nullable=True))

    op.add_column("insurance_settlements", sa.Column("mobile", sa.Boolean(), server_default="false", nullable=False))
    op.add_column("insurance_settlements", sa.Column("med_org_ord", _STR(length=40), nullable=True))
    op.add_column("insurance_settlements", sa.Column("pay_ord_id", _STR(length=40), nullable=True))
    op.add_column("insurance_settlements", sa.Column("pay_token", _STR(length=64), nullable=True))
    op.create_index(op.f("ix_insurance_settlements_pay_ord_id"), "insurance_settlements", ["pay_ord_id"], unique=False)

    op.drop_constraint("bill_insurance_refund_whole", "bills", type_="check")
    op.create_check_constraint("bill_insurance_refund_cap", "bills", "insurance_refunded_fen <= insurance_fen")


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_constraint("bill_insurance_refund_cap", "bills", type_="check")
    op.create_check_constraint("bill_insurance_refund_whole", "bills", "insurance_refunded_fen IN (0, insurance_fen)")
    op.drop_index(op.f("ix_insurance_settlements_pay_ord_id"), table_name="insurance_settlements")
    for column in ("pay_token", "pay_ord_id", "med_org_ord", "mobile"):
        op.drop_column("insurance_settlements", column)
    for column in ("authorized_at", "pay_auth_no_enc", "mobile"):
        op.drop_column("insurance_credentials", column)
    op.alter_column("insurance_credentials", "cert_no_enc", existing_type=_STR(), nullable=False)
