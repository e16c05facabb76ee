"""exam orders: the exam catalogue, each exam's daily capacity, exam orders and their exams

Revision ID: 427070b54409
Revises: 59158b9ae0f0
Create Date: 2026-11-26 03:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

# revision identifiers, used by Alembic.
revision: str = '427070b54409'
down_revision: Union[str, Sequence[str], None] = '59158b9ae0f0'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('exam_catalogue',
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('price_fen', sa.Integer(), nullable=False),
    sa.Column('department', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('campus', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('needs_booking', sa.Boolean(), nullable=False),
    sa.Column('daily_capacity', sa.Integer(), nullable=False),
    sa.Column('preparation', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
    sa.CheckConstraint("category IN ('lab', 'exam')", name='exam_category'),
    sa.CheckConstraint('price_fen > 0', name='exam_price_positive'),
    sa.PrimaryKeyConstraint('code')
    )
    # A day's count of booked exams never passes its capacity: the booking statement relies on it.
    op.create_table('exam_capacity',
    sa.Column('exam_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('booked', sa.Integer(), nullable=False),
    sa.CheckConstraint('booked >= 0 AND booked <= capacity', name='exam_capacity_bounds'),
    sa.ForeignKeyConstraint(['exam_code'], ['exam_catalogue.code'], ),
    sa.PrimaryKeyConstraint('exam_code', 'day')
    )
    op.create_table('exam_orders',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('visit_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('patient_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('doctor_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('total_fen', sa.Integer(), nullable=False),
    sa.Column('refunded_fen', sa.Integer(), nullable=False),
    sa.Column('bill_id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['doctor_id'], ['doctors.id'], ),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_exam_orders_doctor_id'), 'exam_orders', ['doctor_id'], unique=False)
    op.create_index(op.f('ix_exam_orders_patient_id'), 'exam_orders', ['patient_id'], unique=False)
    op.create_index(op.f('ix_exam_orders_stage'), 'exam_orders', ['stage'], unique=False)
    op.create_index(op.f('ix_exam_orders_visit_id'), 'exam_orders', ['visit_id'], unique=False)
    op.create_table('exam_items',
    sa.Column('order_id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('item_no', sa.Integer(), nullable=False),
    sa.Column('exam_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('price_fen', sa.Integer(), nullable=False),
    sa.Column('needs_booking', sa.Boolean(), nullable=False),
    sa.Column('department', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('campus', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('booked_day', sa.Date(), nullable=True),
    sa.Column('performed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('performed_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('refund_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('cancel_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.ForeignKeyConstraint(['exam_code'], ['exam_catalogue.code'], ),
    sa.ForeignKeyConstraint(['order_id'], ['exam_orders.id'], ),
    sa.PrimaryKeyConstraint('order_id', 'item_no')
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('exam_items')
    op.drop_index(op.f('ix_exam_orders_visit_id'), table_name='exam_orders')
    op.drop_index(op.f('ix_exam_orders_stage'), table_name='exam_orders')
    op.drop_index(op.f('ix_exam_orders_patient_id'), table_name='exam_orders')
    op.drop_index(op.f('ix_exam_orders_doctor_id'), table_name='exam_orders')
    op.drop_table('exam_orders')
    op.drop_table('exam_capacity')
    op.drop_table('exam_catalogue')
