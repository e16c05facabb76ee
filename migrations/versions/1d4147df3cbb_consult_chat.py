"""consult chat: messages, encrypted media, read cursors and calls of a visit

Revision ID: 1d4147df3cbb
Revises: c8e2a9d41f06
Create Date: 2026-11-26 14:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

# revision identifiers, used by Alembic.
revision: str = '1d4147df3cbb'
down_revision: Union[str, Sequence[str], None] = 'c8e2a9d41f06'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('consult_media',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('visit_id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('uploaded_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('sm3', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('data_enc', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('image', 'voice')", name='consult_media_kind'),
    sa.CheckConstraint('size_bytes > 0', name='consult_media_size'),
    sa.ForeignKeyConstraint(['uploaded_by'], ['users.id'], ),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_consult_media_visit_id'), 'consult_media', ['visit_id'], unique=False)
    op.create_table('consult_calls',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('visit_id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('media', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('room_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('endpoint', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('started_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('ended_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('duration_s', sa.Integer(), nullable=True),
    sa.CheckConstraint("media IN ('audio', 'video')", name='consult_call_media'),
    sa.CheckConstraint('ended_at IS NULL OR ended_at >= started_at', name='consult_call_window'),
    sa.ForeignKeyConstraint(['ended_by'], ['users.id'], ),
    sa.ForeignKeyConstraint(['started_by'], ['users.id'], ),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_consult_calls_visit_id'), 'consult_calls', ['visit_id'], unique=False)
    op.create_index('consult_call_ongoing', 'consult_calls', ['visit_id'], unique=True,
                    postgresql_where=sa.text('ended_at IS NULL'))
    op.create_table('consult_messages',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('visit_id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('sender_user_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('sender_role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('body_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('media_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('call_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('client_msg_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('text', 'image', 'voice', 'system', 'call')", name='consult_message_kind'),
    sa.CheckConstraint("kind = 'system' OR sender_user_id IS NOT NULL", name='consult_message_sender'),
    sa.CheckConstraint("kind NOT IN ('text', 'system') OR body_enc IS NOT NULL", name='consult_message_body'),
    sa.CheckConstraint("(kind IN ('image', 'voice')) = (media_id IS NOT NULL)", name='consult_message_media'),
    sa.CheckConstraint("(kind = 'call') = (call_id IS NOT NULL)", name='consult_message_call'),
    sa.ForeignKeyConstraint(['call_id'], ['consult_calls.id'], ),
    sa.ForeignKeyConstraint(['media_id'], ['consult_media.id'], ),
    sa.ForeignKeyConstraint(['sender_user_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('visit_id', 'sender_user_id', 'client_msg_id', name='consult_message_once')
    )
    op.create_index('ix_consult_messages_visit_id_id', 'consult_messages', ['visit_id', 'id'], unique=False)
    op.create_table('consult_reads',
    sa.Column('visit_id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('last_read_id', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], ),
    sa.PrimaryKeyConstraint('visit_id', 'user_id')
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('consult_reads')
    op.drop_index('ix_consult_messages_visit_id_id', table_name='consult_messages')
    op.drop_table('consult_messages')
    op.drop_index('consult_call_ongoing', table_name='consult_calls', postgresql_where=sa.text('ended_at IS NULL'))
    op.drop_index(op.f('ix_consult_calls_visit_id'), table_name='consult_calls')
    op.drop_table('consult_calls')
    op.drop_index(op.f('ix_consult_media_visit_id'), table_name='consult_media')
    op.drop_table('consult_media')
