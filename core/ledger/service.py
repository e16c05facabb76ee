"""The evidence ledger in PostgreSQL: append entries, sign tree heads, serve inclusion and consistency proofs.

Appends run the `ledger_append` SQL function (see the evidence_ledger migration): one round trip, serialised by a
transaction-scoped advisory lock (key 724002; core.migrate takes 724001), so `seq` is gap-free and commits land in
`seq` order: whatever prefix of the log a reader sees is complete. Perfect subtrees of 2^STORED_LEVEL leaves and up are hashed once,
when a tree head first covers them, and kept in `ledger_nodes`; a root or a proof then reads O(log n) stored nodes plus
at most a few runs of 256 leaf hashes, however long the log grows. Nothing here trusts those stored nodes for auditing:
core.ledger.audit recomputes everything from the entries.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol, cast

import asyncpg
from sqlalchemy import Row, Table, and_, func, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.crypto import tsp
from core.crypto.sm2 import Sm2PrivateKey
from core.crypto.tsp import TimestampToken
from core.db import transaction
from core.ledger import merkle
from core.ledger.encoding import encode_entry, encode_tree_head, head_time, key_id
from models.ledger import ConsistencyProof, Evidence, InclusionProof, LedgerReceipt, TreeHead
from models.tables import LedgerEntry, LedgerNode, LedgerTreeHead

# 2^8 = 256 leaves: the smallest subtree kept. Lower costs more rows, higher more leaves read per proof.
STORED_LEVEL = 8
# Leaves read per query while hashing new stored subtrees: 64 subtrees' worth, about 2 MiB.
_LEAVES_PER_READ = 64 << STORED_LEVEL

# The tables as Core objects: the ledger's statements are bulk inserts and column reads, not ORM work.
ENTRIES = cast(Table, LedgerEntry.__table__)  # type: ignore[attr-defined]
NODES = cast(Table, LedgerNode.__table__)  # type: ignore[attr-defined]
HEADS = cast(Table, LedgerTreeHead.__table__)  # type: ignore[attr-defined]


class Stamper(Protocol):
    """What the ledger needs of an RFC 3161 TSA (activities.adapters.tsa.TimestampAuthority fits)."""

    hash_algorithm: str

    async def timestamp(self, *, data_digest: bytes, hash_algorithm: str) -> TimestampToken: ...


class ProofUnavailable(LookupError):
    """No proof for these sizes: beyond the latest signed tree head, or an index outside the tree."""


def receipt(row: Row[Any]) -> LedgerReceipt:
    return LedgerReceipt(
        seq=row.seq,
        kind=row.kind,
        subject=row.subject,
        digest=row.digest.hex(),
        leaf_hash=row.leaf_hash.hex(),
        recorded_at=row.recorded_at,
    )


def tree_head(row: Row[Any]) -> TreeHead:
    return TreeHead(
        size=row.size,
        root_hash=row.root_hash.hex(),
        signed_at=row.signed_at,
        key_id=row.key_id,
        signature=row.signature.hex(),
        tsa_token=row.tsa_token.hex(),
        tsa_hash_algorithm=row.tsa_hash_algorithm,
        timestamped_at=row.timestamped_at,
    )


class EvidenceLedger:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def append(self, evidence: Evidence) -> LedgerReceipt:
        """Add the evidence as the next leaf, or return the receipt it already has: (kind, subject, digest) is
        recorded once, so a retried step never adds a second leaf. `recorded_at` is when the append was asked for."""
        digest = bytes.fromhex(evidence.digest)
        recorded_at = datetime.now(UTC)
        leaf = merkle.leaf_hash(encode_entry(evidence.kind, evidence.subject, digest, recorded_at))
        async with self._sessions() as session:
            # Straight to asyncpg, outside any transaction: the function's own implicit transaction then ends, and
            # the append lock is released, inside PostgreSQL, with no client round trip while it is held. Through
            # the ORM session the lock stayed held across a separate COMMIT: 660 appends/s from 16 callers, not 1,770.
            pooled = await (await session.connection()).get_raw_connection()
            connection = cast(asyncpg.Connection, pooled.driver_connection)
            row = await connection.fetchrow(
                "SELECT * FROM ledger_append($1, $2, $3, $4, $5)",
                evidence.kind,
                evidence.subject,
                digest,
                leaf,
                recorded_at,
            )
        return LedgerReceipt(
            seq=row["entry_seq"],
            kind=evidence.kind,
            subject=evidence.subject,
            digest=evidence.digest,
            leaf_hash=row["entry_leaf_hash"].hex(),
            recorded_at=row["entry_recorded_at"],
        )

    async def entry(self, seq: int) -> LedgerReceipt | None:
        async with self._sessions() as session:
            row = (await session.execute(select(ENTRIES).where(ENTRIES.c.seq == seq))).first()
        return None if row is None else receipt(row)

    async def size(self) -> int:
        async with self._sessions() as session:
            return await _size(session)

    async def latest_head(self) -> TreeHead | None:
        async with self._sessions() as session:
            row = (await session.execute(select(HEADS).order_by(HEADS.c.size.desc()).limit(1))).first()
        return None if row is None else tree_head(row)

    async def head(self, size: int) -> TreeHead | None:
        async with self._sessions() as session:
            row = (await session.execute(select(HEADS).where(HEADS.c.size == size))).first()
        return None if row is None else tree_head(row)

    async def sign_tree_head(self, key: Sm2PrivateKey, tsa: Stamper) -> TreeHead:
        """Sign the root over every entry so far and have the signature timestamped; one head per size, so with
        nothing appended since the latest head that head is returned and the TSA is not asked again."""
        size = await self.size()
        latest = await self.latest_head()
        if latest is not None and latest.size == size:
            return latest
        await self._store_subtrees(size)
        async with self._sessions() as session:
            root = await self._root(session, size)
        signed_at = head_time(datetime.now(UTC))
        signature = key.sign(encode_tree_head(size, root, signed_at))
        token = await tsa.timestamp(
            data_digest=tsp.digest(tsa.hash_algorithm, signature), hash_algorithm=tsa.hash_algorithm
        )
        async with transaction(self._sessions) as session:
            await session.execute(
                insert(HEADS)
                .values(
                    size=size,
                    root_hash=root,
                    signed_at=signed_at,
                    key_id=key_id(key.public_key()),
                    signature=signature,
                    tsa_token=token.der,
                    tsa_hash_algorithm=token.hash_algorithm,
                    timestamped_at=token.gen_time,
                )
                # Another signer got this size in first; its head is as good as ours.
                .on_conflict_do_nothing(index_elements=[HEADS.c.size])
            )
            stored = (await session.execute(select(HEADS).where(HEADS.c.size == size))).one()
        return tree_head(stored)

    async def prove(self, seq: int, tree_size: int | None = None) -> InclusionProof:
        """The audit path of entry `seq` in the tree of `tree_size` entries (default: the latest signed head's)."""
        async with self._sessions() as session:
            signed = await _signed_size(session)
            size = signed if tree_size is None else tree_size
            if size > signed:
                raise ProofUnavailable(f"树大小 {size} 超过最新已签名树头（{signed}）")
            if not 0 <= seq < size:
                raise ProofUnavailable(f"条目 #{seq} 不在大小为 {size} 的树中")
            ranges = merkle.inclusion_ranges(seq, size)
            *path, root = await self._range_hashes(session, [*ranges, (0, size)])
            leaf = (await session.execute(select(ENTRIES.c.leaf_hash).where(ENTRIES.c.seq == seq))).scalar_one()
        return InclusionProof(
            seq=seq, tree_size=size, leaf_hash=leaf.hex(), root_hash=root.hex(), path=[h.hex() for h in path]
        )

    async def consistency(self, old_size: int, new_size: int) -> ConsistencyProof:
        """Proof that the tree of `old_size` entries is a prefix of the tree of `new_size` (both ≤ latest head)."""
        async with self._sessions() as session:
            signed = await _signed_size(session)
            if not 0 < old_size <= new_size <= signed:
                raise ProofUnavailable(f"无法给出 {old_size} 到 {new_size} 的一致性证明（最新已签名树头 {signed}）")
            ranges = merkle.consistency_ranges(old_size, new_size)
            *path, old_root, new_root = await self._range_hashes(session, [*ranges, (0, old_size), (0, new_size)])
        return ConsistencyProof(
            old_size=old_size,
            new_size=new_size,
            old_root=old_root.hex(),
            new_root=new_root.hex(),
            path=[h.hex() for h in path],
        )

    async def _root(self, session: AsyncSession, size: int) -> bytes:
        if size == 0:
            return merkle.EMPTY_ROOT
        (root,) = await self._range_hashes(session, [(0, size)])
        return root

    async def _range_hashes(self, session: AsyncSession, ranges: list[merkle.Range]) -> list[bytes]:
        """MTH of each range (each a node of the tree): stored subtrees where kept, leaf hashes below that."""
        parts = [merkle.subtrees(start, end) for start, end in ranges]
        wanted = {subtree for part in parts for subtree in part}
        stored = {subtree for subtree in wanted if subtree[0] >= STORED_LEVEL}
        known = await _nodes(session, stored)
        if len(known) != len(stored):
            raise ProofUnavailable("缺少子树哈希：该树大小尚未被已签名树头覆盖")
        small = wanted - stored
        # Every small subtree lies within one run of 2^STORED_LEVEL leaves; read each such run once.
        runs = sorted({(index << level) >> STORED_LEVEL for level, index in small})
        leaves: dict[int, bytes] = {}
        if runs:
            bounds = [
                and_(ENTRIES.c.seq >= run << STORED_LEVEL, ENTRIES.c.seq < (run + 1) << STORED_LEVEL) for run in runs
            ]
            result = await session.execute(select(ENTRIES.c.seq, ENTRIES.c.leaf_hash).where(or_(*bounds)))
            leaves = {row.seq: row.leaf_hash for row in result}
        for level, index in small:
            first = index << level
            try:
                known[(level, index)] = merkle.root([leaves[seq] for seq in range(first, first + (1 << level))])
            except KeyError as exc:
                raise ProofUnavailable(f"缺少条目 #{exc.args[0]}") from exc
        return [merkle.fold([known[subtree] for subtree in part]) for part in parts]

    async def _store_subtrees(self, size: int) -> None:
        """Hash and keep every stored-level subtree that the first `size` entries complete and that is not kept yet."""
        runs = size >> STORED_LEVEL
        async with transaction(self._sessions) as session:
            done = (
                await session.execute(
                    select(func.coalesce(func.max(NODES.c.index) + 1, 0)).where(NODES.c.level == STORED_LEVEL)
                )
            ).scalar_one()
            if done >= runs:
                return
            # The kept subtrees covering the runs done so far; new runs extend them like leaves extend a tree.
            frontier = [(STORED_LEVEL + level, index) for level, index in merkle.subtrees(0, done)] if done else []
            known = await _nodes(session, set(frontier))
            tree = merkle.CompactRange(done, [known[subtree] for subtree in frontier])
            for first in range(done, runs, _LEAVES_PER_READ >> STORED_LEVEL):
                last = min(runs, first + (_LEAVES_PER_READ >> STORED_LEVEL))
                start, end = first << STORED_LEVEL, last << STORED_LEVEL
                result = await session.execute(
                    select(ENTRIES.c.leaf_hash)
                    .where(ENTRIES.c.seq >= start, ENTRIES.c.seq < end)
                    .order_by(ENTRIES.c.seq)
                )
                leaves = result.scalars().all()
                if len(leaves) != end - start:
                    raise ProofUnavailable(f"条目 #{start}–#{end - 1} 不完整")
                rows: list[dict[str, Any]] = []
                for run in range(first, last):
                    offset = (run - first) << STORED_LEVEL
                    run_hash = merkle.root(leaves[offset : offset + (1 << STORED_LEVEL)])
                    rows.append({"level": STORED_LEVEL, "index": run, "hash": run_hash})
                    rows.extend(
                        {"level": STORED_LEVEL + level, "index": index, "hash": node}
                        for level, index, node in tree.append(run_hash)
                    )
                await session.execute(insert(NODES).on_conflict_do_nothing(), rows)


async def _size(session: AsyncSession) -> int:
    return (await session.execute(select(func.coalesce(func.max(ENTRIES.c.seq) + 1, 0)))).scalar_one()


async def _signed_size(session: AsyncSession) -> int:
    return (await session.execute(select(func.coalesce(func.max(HEADS.c.size), 0)))).scalar_one()


async def _nodes(session: AsyncSession, subtrees: set[merkle.Subtree]) -> dict[merkle.Subtree, bytes]:
    if not subtrees:
        return {}
    result = await session.execute(
        select(NODES.c.level, NODES.c.index, NODES.c.hash).where(tuple_(NODES.c.level, NODES.c.index).in_(subtrees))
    )
    # Unpacked, not read by name: a Row is a tuple, and `row.index` is tuple.index.
    return {(level, index): node for level, index, node in result}
