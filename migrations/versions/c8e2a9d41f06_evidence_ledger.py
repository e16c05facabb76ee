"""evidence ledger: entries, subtree hashes, signed tree heads; append-only

Revision ID: c8e2a9d41f06
Revises: c2d4e6f8a013
Create Date: 2026-11-26 10:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

# revision identifiers, used by Alembic.
revision: str = 'c8e2a9d41f06'
down_revision: Union[str, Sequence[str], None] = 'c2d4e6f8a013'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_TABLES = ('ledger_entries', 'ledger_nodes', 'ledger_tree_heads')


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('ledger_entries',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('digest', sa.LargeBinary(), nullable=False),
    sa.Column('leaf_hash', sa.LargeBinary(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('seq >= 0', name='ledger_entry_seq'),
    sa.CheckConstraint('octet_length(digest) = 32 AND octet_length(leaf_hash) = 32', name='ledger_entry_hashes'),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('kind', 'subject', 'digest', name='ledger_entry_once')
    )
    op.create_table('ledger_nodes',
    sa.Column('level', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('index', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hash', sa.LargeBinary(), nullable=False),
    sa.CheckConstraint('octet_length(hash) = 32', name='ledger_node_hash'),
    sa.PrimaryKeyConstraint('level', 'index')
    )
    op.create_table('ledger_tree_heads',
    sa.Column('size', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('root_hash', sa.LargeBinary(), nullable=False),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('signature', sa.LargeBinary(), nullable=False),
    sa.Column('tsa_token', sa.LargeBinary(), nullable=False),
    sa.Column('tsa_hash_algorithm', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('timestamped_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('size >= 0', name='ledger_head_size'),
    sa.CheckConstraint('octet_length(root_hash) = 32', name='ledger_head_root'),
    sa.PrimaryKeyConstraint('size')
    )
    # Append-only in the database itself, whatever the code above it does: a changed or removed row would break
    # every signed tree head after it. Restricted-violation, so callers can tell this refusal from other errors.
    op.execute("""
        CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '存证账本只允许追加，拒绝 % (% is append-only)', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'restrict_violation';
        END
        $$
    """)
    # One round trip per append, and the append lock held only while PostgreSQL inserts and commits. Statements in a
    # PL/pgSQL function each take a fresh snapshot, so max(seq) is read after the lock is held: gap-free seqs that
    # commit in order. The leaf hash comes from the caller (PostgreSQL has no SM3); the leaf does not cover seq.
    op.execute("""
        CREATE FUNCTION ledger_append(p_kind text, p_subject text, p_digest bytea, p_leaf_hash bytea,
                                      p_recorded_at timestamptz)
        RETURNS TABLE (entry_seq bigint, entry_leaf_hash bytea, entry_recorded_at timestamptz)
        LANGUAGE plpgsql AS $$
        BEGIN
            -- Evidence already on record gets its first receipt, without waiting for the lock.
            RETURN QUERY SELECT e.seq, e.leaf_hash, e.recorded_at FROM ledger_entries e
                WHERE e.kind = p_kind AND e.subject = p_subject AND e.digest = p_digest;
            IF FOUND THEN
                RETURN;
            END IF;
            PERFORM pg_advisory_xact_lock(724002);
            RETURN QUERY INSERT INTO ledger_entries AS e (seq, kind, subject, digest, leaf_hash, recorded_at)
                SELECT coalesce(max(x.seq) + 1, 0), p_kind, p_subject, p_digest, p_leaf_hash, p_recorded_at
                FROM ledger_entries x
                ON CONFLICT (kind, subject, digest) DO NOTHING
                RETURNING e.seq, e.leaf_hash, e.recorded_at;
            IF FOUND THEN
                RETURN;
            END IF;
            -- Appended by someone else between the look-up and the lock.
            RETURN QUERY SELECT e.seq, e.leaf_hash, e.recorded_at FROM ledger_entries e
                WHERE e.kind = p_kind AND e.subject = p_subject AND e.digest = p_digest;
        END
        $$
    """)
    for table in _TABLES:
        op.execute(
            f'CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} '
            'FOR EACH ROW EXECUTE FUNCTION ledger_append_only()'
        )
        op.execute(
            f'CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} '
            'FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()'
        )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('ledger_tree_heads')
    op.drop_table('ledger_nodes')
    op.drop_table('ledger_entries')
    op.execute('DROP FUNCTION ledger_append(text, text, bytea, bytea, timestamptz)')
    op.execute('DROP FUNCTION ledger_append_only()')
