"""Audit the whole ledger from its entries up, trusting nothing derived: every leaf hash is recomputed from the stored
digest and fields, every tree head's root from those leaves, every kept subtree hash likewise; each head's SM2 signature
and RFC 3161 token are verified against keys and anchors the caller trusts, and consecutive heads are checked with the
consistency proofs the ledger serves. One pass over the entries, in O(log n) memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from asn1crypto import x509
from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.crypto import tsp
from core.crypto.sm2 import InvalidSignature, Sm2PublicKey
from core.ledger import merkle
from core.ledger.encoding import encode_entry, encode_tree_head
from core.ledger.service import ENTRIES, HEADS, NODES, STORED_LEVEL, EvidenceLedger, ProofUnavailable

# Problems kept word for word; beyond this only counted, so a wholesale rewrite still gives a readable report.
_KEPT_PROBLEMS = 100
_ROWS_PER_FETCH = 10_000


@dataclass
class AuditReport:
    entries: int = 0
    heads: int = 0
    nodes: int = 0
    problem_count: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def problem(self, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < _KEPT_PROBLEMS:
            self.problems.append(message)


async def audit(
    sessions: async_sessionmaker[AsyncSession],
    public_keys: Mapping[str, Sm2PublicKey],
    anchors: Sequence[x509.Certificate],
) -> AuditReport:
    """Check everything; `public_keys` maps core.ledger.encoding.key_id to the keys trusted to sign heads."""
    report = AuditReport()
    async with sessions() as session:
        heads = list(await session.execute(select(HEADS).order_by(HEADS.c.size)))
        nodes = {(level, index): node for level, index, node in await session.execute(select(NODES))}
        roots = await _recompute(session, report, [head.size for head in heads], nodes)
    report.heads, report.nodes = len(heads), len(nodes)
    for head in heads:
        _check_head(report, head, roots.get(head.size), public_keys, anchors)
    ledger = EvidenceLedger(sessions)
    for old, new in pairwise(heads):
        # An empty tree has no consistency proof: every tree extends it.
        if old.size > 0:
            await _check_consistency(report, ledger, old, new)
    return report


async def _recompute(
    session: AsyncSession, report: AuditReport, head_sizes: list[int], nodes: dict[merkle.Subtree, bytes]
) -> dict[int, bytes]:
    """Stream the entries in order; return the recomputed root at every head size the entries reach."""
    wanted = set(head_sizes)
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT} if 0 in wanted else {}
    tree = merkle.CompactRange()
    seen_nodes = 0
    stream = await session.stream(select(ENTRIES).order_by(ENTRIES.c.seq).execution_options(yield_per=_ROWS_PER_FETCH))
    async for row in stream:
        if row.seq != tree.size:
            report.problem(f"条目序号不连续：应为 #{tree.size}，实为 #{row.seq}（有条目被删除或插入）")
        leaf = merkle.leaf_hash(encode_entry(row.kind, row.subject, row.digest, row.recorded_at))
        if leaf != row.leaf_hash:
            report.problem(f"条目 #{row.seq}：存储的叶子哈希与其摘要和字段重算结果不符")
        # The tree goes on with the recomputed leaf: heads must match what the entries say, not what was stored.
        for level, index, node in tree.append(leaf):
            if level < STORED_LEVEL or (level, index) not in nodes:
                continue
            seen_nodes += 1
            if nodes[(level, index)] != node:
                report.problem(f"子树哈希 (层 {level}, 位置 {index}) 与条目重算结果不符")
        if tree.size in wanted:
            roots[tree.size] = tree.root()
    report.entries = tree.size
    if seen_nodes != len(nodes):
        report.problem(f"有 {len(nodes) - seen_nodes} 个子树哈希不对应任何完整的条目区间")
    return roots


def _check_head(
    report: AuditReport,
    head: Row[Any],
    recomputed: bytes | None,
    public_keys: Mapping[str, Sm2PublicKey],
    anchors: Sequence[x509.Certificate],
) -> None:
    name = f"树头 size={head.size}"
    if recomputed is None:
        report.problem(f"{name}：超过现有条目数 {report.entries}")
    elif recomputed != head.root_hash:
        report.problem(f"{name}：根哈希与条目重算结果不符")
    key = public_keys.get(head.key_id)
    if key is None:
        report.problem(f"{name}：签名密钥 {head.key_id[:16]}… 不在受信任的密钥中")
    else:
        try:
            key.verify(head.signature, encode_tree_head(head.size, head.root_hash, head.signed_at))
        except InvalidSignature:
            report.problem(f"{name}：SM2 签名无效")
    try:
        token = tsp.verify_token(
            head.tsa_token,
            data_digest=tsp.digest(head.tsa_hash_algorithm, head.signature),
            hash_algorithm=head.tsa_hash_algorithm,
            anchors=anchors,
        )
    except (tsp.TimestampError, ValueError) as exc:
        report.problem(f"{name}：时间戳无效（{exc}）")
        return
    if token.gen_time != head.timestamped_at:
        report.problem(f"{name}：存储的时间戳时间与时间戳令牌不符")


async def _check_consistency(report: AuditReport, ledger: EvidenceLedger, old: Row[Any], new: Row[Any]) -> None:
    name = f"树头 size={old.size} → size={new.size}"
    try:
        proof = await ledger.consistency(old.size, new.size)
        merkle.verify_consistency(
            old.size, new.size, old.root_hash, new.root_hash, [bytes.fromhex(node) for node in proof.path]
        )
    except (ProofUnavailable, merkle.InvalidProof) as exc:
        report.problem(f"{name}：一致性证明不成立（{exc}）")
