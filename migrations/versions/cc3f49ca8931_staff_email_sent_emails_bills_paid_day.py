"""staff e-mail addresses and the e-mails sent (notices by e-mail, 8.4.3.4); bills indexed by channel and paid day

Users get an encrypted e-mail address; `sent_emails` records each e-mail a mail server accepted under its idempotency
key, so a retried send is a no-op. Bills get an index on (channel, paid_at) for the paid bills, which reconciliation's
platform side reads one channel and one day at a time.

Revision ID: cc3f49ca8931
Revises: 0a5965dc64d5
Create Date: 2026-11-26 02:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

# revision identifiers, used by Alembic.
revision: str = 'cc3f49ca8931'
down_revision: Union[str, Sequence[str], None] = '0a5965dc64d5'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('users', sa.Column('email_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.create_table('sent_emails',
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('message_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('reply', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('idempotency_key')
    )
    # Builds under a lock that holds off writes to bills; on a large table build it CONCURRENTLY beforehand under
    # this name, and this step finds it there.
    op.create_index('ix_bills_channel_paid_at', 'bills', ['channel', 'paid_at'], unique=False,
                    postgresql_where=sa.text('paid_at IS NOT NULL'), if_not_exists=True)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_bills_channel_paid_at', table_name='bills', postgresql_where=sa.text('paid_at IS NOT NULL'))
    op.drop_table('sent_emails')
    op.drop_column('users', 'email_enc')
