"""The evidence ledger (存证): entries, cached subtree hashes and signed tree heads. Rows are only ever added; the
migration puts triggers on all three tables that refuse UPDATE, DELETE and TRUNCATE.

An entry holds the SM3 digest of a piece of evidence and a reference to its subject, never the evidence itself, so the
ledger carries no PII and keeps it all the same when the record it points to is corrected or archived.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, LargeBinary, SmallInteger, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.tables._types import Timestamp


def _bytes_column() -> Column[bytes]:
    return Column(LargeBinary, nullable=False)


class LedgerEntry(SQLModel, table=True):
    """One leaf. `seq` is its 0-based index in the tree, assigned gap-free in commit order."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("kind", "subject", "digest", name="ledger_entry_once"),
        CheckConstraint("seq >= 0", name="ledger_entry_seq"),
        CheckConstraint("octet_length(digest) = 32 AND octet_length(leaf_hash) = 32", name="ledger_entry_hashes"),
    )

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    # What happened, e.g. "rx.signed"; and to what, as `<type>:<id>`, e.g. "prescription:RX20261125001".
    kind: str = Field(max_length=64)
    subject: str = Field(max_length=200)
    digest: bytes = Field(sa_column=_bytes_column())
    leaf_hash: bytes = Field(sa_column=_bytes_column())
    recorded_at: datetime = Timestamp()


class LedgerNode(SQLModel, table=True):
    """The hash of the perfect subtree over leaves [index·2^level, (index+1)·2^level), kept for levels from
    core.ledger.service.STORED_LEVEL up once complete, so roots and proofs need no pass over every leaf."""

    __tablename__ = "ledger_nodes"
    __table_args__ = (CheckConstraint("octet_length(hash) = 32", name="ledger_node_hash"),)

    level: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    index: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=_bytes_column())


class LedgerTreeHead(SQLModel, table=True):
    """A signed tree head: the root over the first `size` entries, signed with the ledger's SM2 key over
    core.ledger.encoding.encode_tree_head and that signature stamped by an RFC 3161 TSA."""

    __tablename__ = "ledger_tree_heads"
    __table_args__ = (
        CheckConstraint("size >= 0", name="ledger_head_size"),
        CheckConstraint("octet_length(root_hash) = 32", name="ledger_head_root"),
    )

    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: bytes = Field(sa_column=_bytes_column())
    signed_at: datetime = Timestamp()
    # core.ledger.encoding.key_id of the public key that verifies `signature` (DER SM2 signature).
    key_id: str = Field(max_length=64)
    signature: bytes = Field(sa_column=_bytes_column())
    # The DER TimeStampToken over `signature`, the imprint's hash algorithm and the token's genTime.
    tsa_token: bytes = Field(sa_column=_bytes_column())
    tsa_hash_algorithm: str = Field(max_length=16)
    timestamped_at: datetime = Timestamp()


class LedgerAnchor(SQLModel, table=True):
    """A signed tree head published to a consortium chain: which transaction holds it. Append-only, like the ledger;
    `qihuang ledger verify` reads each one back from the chain and compares it with the head."""

    __tablename__ = "ledger_anchors"

    size: int = Field(
        sa_column=Column(BigInteger, ForeignKey("ledger_tree_heads.size"), primary_key=True, autoincrement=False)
    )
    chain: str = Field(primary_key=True, max_length=32)
    tx_id: str = Field(max_length=128)
    block_height: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    anchored_at: datetime = Timestamp()
