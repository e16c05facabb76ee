"""The evidence ledger (存证, 8.1.2.4, 8.1.3.5, 8.2.6.5–8.2.6.6, 8.5.1.5, 8.6.6.2): what flows append, and the receipts,
tree heads and proofs they get back. Hashes and signatures travel as lowercase hex."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Sm3Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SM3 hash, 64 lowercase hex digits")]
Hex = Annotated[str, Field(pattern=r"^([0-9a-f]{2})*$")]


class Evidence(BaseModel):
    """A fact to put on record: the SM3 digest of the evidence (a signed prescription, a consent, a media file…),
    what happened and to which record. Never the evidence itself, and no names, phone or ID numbers in `subject`."""

    model_config = ConfigDict(frozen=True)

    # Dotted event name, e.g. "rx.signed", "patient.registered".
    kind: str = Field(max_length=64, pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
    # `<type>:<id>` of the business record, e.g. "prescription:RX20261125001".
    subject: str = Field(max_length=200, pattern=r"^[a-z][a-z_]*:[A-Za-z0-9._:/-]+$")
    digest: Sm3Hex


class LedgerReceipt(BaseModel):
    """Where the evidence went: leaf `seq` (0-based) with `leaf_hash` = SM3(0x00 ‖ core.ledger.encoding.encode_entry)."""

    seq: int = Field(ge=0)
    kind: str
    subject: str
    digest: Sm3Hex
    leaf_hash: Sm3Hex
    recorded_at: datetime


class TreeHead(BaseModel):
    """A signed tree head: the SM2 signature covers core.ledger.encoding.encode_tree_head(size, root_hash, signed_at);
    `tsa_token` is the DER RFC 3161 token over that signature."""

    size: int = Field(ge=0)
    root_hash: Sm3Hex
    signed_at: datetime
    key_id: Sm3Hex
    signature: Hex
    tsa_token: Hex
    tsa_hash_algorithm: str
    timestamped_at: datetime


class InclusionProof(BaseModel):
    """RFC 9162 audit path of leaf `seq` in the tree of `tree_size` entries whose root is `root_hash`."""

    seq: int = Field(ge=0)
    tree_size: int = Field(ge=1)
    leaf_hash: Sm3Hex
    root_hash: Sm3Hex
    path: list[Sm3Hex]


class ConsistencyProof(BaseModel):
    """RFC 9162 proof that the tree of `old_size` entries is a prefix of the tree of `new_size`."""

    old_size: int = Field(ge=1)
    new_size: int = Field(ge=1)
    old_root: Sm3Hex
    new_root: Sm3Hex
    path: list[Sm3Hex]


class AnchorReceipt(BaseModel):
    """A signed tree head published to a consortium chain (联盟链): where it went and what the chain holds."""

    chain: str
    tx_id: str = Field(max_length=128)
    block_height: int | None = None
    size: int = Field(ge=0)
    root_hash: Sm3Hex
    # The tree head's SM2 signature as published, so the chain alone shows who signed that root.
    signature: Hex
    anchored_at: datetime
