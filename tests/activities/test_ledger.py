"""The evidence ledger against PostgreSQL and the sandbox TSA: appends, signed and timestamped tree heads, proofs,
the append-only triggers, the audit catching tampered rows, and `qihuang ledger verify|prove` run in-process.

The session database is shared with every other test; the ledger in it is global, so these tests look at sizes
relative to what was there before them, and every head in it is signed with this module's key and TSA.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.adapters.ledger_anchor.sandbox import SandboxLedgerAnchor
from activities.adapters.tsa.sandbox import SandboxTsa
from activities.ledger import LedgerActivities
from core.crypto import tsp
from core.crypto.sm import sm3
from core.crypto.sm2 import Sm2PrivateKey
from core.db import transaction
from core.ledger import merkle
from core.ledger.audit import AuditReport, audit
from core.ledger.encoding import encode_entry, encode_tree_head, head_time, key_id
from core.ledger.keys import load_signing_key
from core.ledger.service import ENTRIES, STORED_LEVEL, EvidenceLedger, ProofUnavailable
from core.settings import Settings, get_settings
from models.ledger import Evidence, LedgerReceipt, TreeHead
from workers.cli import main as cli_main

# Crosses two stored-subtree boundaries, so roots and proofs use kept nodes as well as leaves.
POPULATION = 2 * (1 << STORED_LEVEL) + 90


def evidence(subject: str, data: bytes, kind: str = "rx.signed") -> Evidence:
    return Evidence(kind=kind, subject=subject, digest=sm3(data).hex())


@dataclass
class LedgerWorld:
    sessions: async_sessionmaker[AsyncSession]
    ledger: EvidenceLedger
    activities: LedgerActivities
    key: Sm2PrivateKey
    tsa: SandboxTsa
    settings: Settings

    async def append(self, item: Evidence) -> LedgerReceipt:
        receipt: LedgerReceipt = await ActivityEnvironment().run(self.activities.append_evidence, item)
        return receipt

    async def sign(self) -> TreeHead:
        head: TreeHead = await ActivityEnvironment().run(self.activities.sign_tree_head)
        return head

    async def audit(self) -> AuditReport:
        public = self.key.public_key()
        return await audit(self.sessions, {key_id(public): public}, self.tsa.trust_anchors)


@pytest.fixture(scope="module")
def ledger_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ledger")


@pytest.fixture(scope="module")
def world(sessions: async_sessionmaker[AsyncSession], database_url: str, ledger_dir: Path) -> LedgerWorld:
    settings = Settings(
        database_url=database_url,
        tsa_sandbox_key_dir=str(ledger_dir / "tsa"),
        ledger_signing_key_file=str(ledger_dir / "ledger-sm2.pem"),
        _env_file=None,  # type: ignore[call-arg]
    )
    key = load_signing_key(settings)
    tsa = SandboxTsa(sessions, settings)
    ledger = EvidenceLedger(sessions)
    return LedgerWorld(sessions, ledger, LedgerActivities(ledger, key, tsa), key, tsa, settings)


@pytest_asyncio.fixture(scope="module")
async def heads(world: LedgerWorld) -> list[TreeHead]:
    """A populated ledger with heads at three sizes, the last covering every entry."""
    signed: list[TreeHead] = []
    for i in range(POPULATION):
        await world.append(evidence(f"prescription:RXPOP{i:05d}", f"population {i}".encode()))
        if i + 1 in (5, 300):
            signed.append(await world.sign())
    signed.append(await world.sign())
    return signed


def test_signing_key_is_made_once_and_never_for_production(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "ledger.pem"
    settings = Settings(ledger_signing_key_file=str(path), _env_file=None)  # type: ignore[call-arg]
    key = load_signing_key(settings)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_signing_key(settings).to_bytes() == key.to_bytes()
    assert list(path.parent.iterdir()) == [path]

    production = Settings(env="production", ledger_signing_key_file=str(tmp_path / "none.pem"), _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(FileNotFoundError):
        load_signing_key(production)
    with pytest.raises(RuntimeError, match="QIHUANG_LEDGER_SIGNING_KEY_FILE"):
        Settings(env="production", _env_file=None).check()  # type: ignore[call-arg]


def test_signed_encodings_have_fixed_layouts() -> None:
    at = datetime(2026, 11, 26, 8, 30, 15, 123456, tzinfo=UTC)
    entry = encode_entry("rx.signed", "prescription:RX1", bytes(32), at)
    micros = int(at.timestamp()) * 1_000_000 + 123456
    assert entry == b"\x01" + micros.to_bytes(
        8, "big"
    ) + b"\x09rx.signed" + b"\x00\x10prescription:RX1" + b"\x20" + bytes(32)
    head = encode_tree_head(5, bytes(range(32)), head_time(at))
    assert head == b"\x00\x01" + (micros // 1000).to_bytes(8, "big") + (5).to_bytes(8, "big") + bytes(range(32))


async def test_append_assigns_gap_free_seqs_and_is_idempotent(world: LedgerWorld, uid: str) -> None:
    first = await world.append(evidence(f"patient:P{uid}", b"registration form", kind="patient.registered"))
    again = await world.append(evidence(f"patient:P{uid}", b"registration form", kind="patient.registered"))
    assert again == first
    # The same digest under another kind or subject is another fact.
    other = await world.append(evidence(f"patient:P{uid}", b"registration form", kind="consent.signed"))
    assert other.seq > first.seq

    items = [evidence(f"visit:V{uid}-{i}", f"booking {i}".encode(), kind="visit.booked") for i in range(20)]
    receipts = await asyncio.gather(*(world.append(item) for item in items + items[:5]))
    seqs = sorted({receipt.seq for receipt in receipts})
    assert len(seqs) == 20
    # Concurrent appends interleave with nothing else here, so they take one contiguous run of seqs.
    assert seqs == list(range(seqs[0], seqs[0] + 20))
    assert receipts[20:] == receipts[:5]

    assert await world.ledger.size() == seqs[-1] + 1
    for receipt in (first, *receipts):
        entry = encode_entry(receipt.kind, receipt.subject, bytes.fromhex(receipt.digest), receipt.recorded_at)
        assert receipt.leaf_hash == merkle.leaf_hash(entry).hex()


async def test_evidence_refuses_what_is_not_a_digest_or_reference() -> None:
    with pytest.raises(ValueError):
        Evidence(kind="rx.signed", subject="prescription:RX1", digest="not hex")
    with pytest.raises(ValueError):
        Evidence(kind="rx.signed", subject="张三 13800138000", digest=sm3(b"x").hex())


async def test_tree_heads_are_signed_and_timestamped(world: LedgerWorld, heads: list[TreeHead]) -> None:
    head = heads[-1]
    assert head.size == await world.ledger.size()
    assert head.key_id == key_id(world.key.public_key())
    signature = bytes.fromhex(head.signature)
    world.key.public_key().verify(signature, encode_tree_head(head.size, bytes.fromhex(head.root_hash), head.signed_at))
    token = tsp.verify_token(
        bytes.fromhex(head.tsa_token),
        data_digest=tsp.digest(head.tsa_hash_algorithm, signature),
        hash_algorithm=head.tsa_hash_algorithm,
        anchors=world.tsa.trust_anchors,
    )
    assert token.gen_time == head.timestamped_at
    assert head.tsa_hash_algorithm == "sm3"
    # Nothing appended since: the same head, and no second stamp.
    assert await world.sign() == head

    async with world.sessions() as session:
        leaves = (await session.execute(select(ENTRIES.c.leaf_hash).order_by(ENTRIES.c.seq))).scalars().all()
    for signed in heads:
        assert signed.root_hash == merkle.root(leaves[: signed.size]).hex()


async def test_inclusion_and_consistency_proofs_verify(world: LedgerWorld, heads: list[TreeHead]) -> None:
    latest = heads[-1]
    step = 7
    for signed in heads:
        for seq in sorted({0, signed.size - 1, *range(0, signed.size, step)}):
            proof = await world.ledger.prove(seq, signed.size)
            assert proof.root_hash == signed.root_hash
            merkle.verify_inclusion(
                bytes.fromhex(proof.leaf_hash),
                seq,
                signed.size,
                [bytes.fromhex(node) for node in proof.path],
                bytes.fromhex(signed.root_hash),
            )
    assert (await world.ledger.prove(3)).tree_size == latest.size
    for old in heads:
        for new in heads:
            if old.size > new.size:
                continue
            consistency = await world.ledger.consistency(old.size, new.size)
            merkle.verify_consistency(
                old.size,
                new.size,
                bytes.fromhex(old.root_hash),
                bytes.fromhex(new.root_hash),
                [bytes.fromhex(node) for node in consistency.path],
            )
    with pytest.raises(ProofUnavailable):
        await world.ledger.prove(0, latest.size + 1)
    with pytest.raises(ProofUnavailable):
        await world.ledger.prove(latest.size, latest.size)
    with pytest.raises(ProofUnavailable):
        await world.ledger.consistency(0, latest.size)


@pytest.mark.parametrize(
    ("table", "column", "where"),
    [
        ("ledger_entries", "kind", "seq = 0"),
        ("ledger_nodes", "hash", "level = 8"),
        ("ledger_tree_heads", "key_id", "size > 0"),
    ],
)
async def test_the_database_refuses_update_delete_and_truncate(
    world: LedgerWorld, heads: list[TreeHead], table: str, column: str, where: str
) -> None:
    # Row triggers fire only for rows that exist: `heads` made sure each table has some.
    for statement in (
        f"UPDATE {table} SET {column} = {column} WHERE {where}",
        f"DELETE FROM {table} WHERE {where}",
        f"TRUNCATE {table} CASCADE",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with transaction(world.sessions) as session:
                await session.execute(text(statement))


@asynccontextmanager
async def behind_the_trigger(
    sessions: async_sessionmaker[AsyncSession], table: str, change: str, undo: str, params: dict[str, Any]
) -> AsyncIterator[None]:
    """Change stored rows as the table owner with the append-only trigger off, as an attacker with database
    access could; put them back afterwards, so the shared ledger stays sound for every other test."""

    async def run(statement: str) -> None:
        async with transaction(sessions) as session:
            await session.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only"))
            await session.execute(text(statement), params)
            await session.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only"))

    await run(change)
    try:
        yield
    finally:
        await run(undo)


FORGED = sm3(b"forged evidence")


async def _tamper_cases(world: LedgerWorld, heads: list[TreeHead]) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """(expected problem text, table, change, undo, params) for each way of editing stored rows."""
    target = heads[0].size + 3
    async with world.sessions() as session:
        row = (await session.execute(select(ENTRIES).where(ENTRIES.c.seq == target))).one()
    consistent_leaf = merkle.leaf_hash(encode_entry(row.kind, row.subject, FORGED, row.recorded_at))
    last = heads[-1]
    return [
        (
            f"条目 #{target}：存储的叶子哈希",
            "ledger_entries",
            "UPDATE ledger_entries SET digest = :forged WHERE seq = :seq",
            "UPDATE ledger_entries SET digest = :digest WHERE seq = :seq",
            {"seq": target, "forged": FORGED, "digest": row.digest},
        ),
        (
            f"树头 size={last.size}：根哈希与条目重算结果不符",
            "ledger_entries",
            "UPDATE ledger_entries SET digest = :forged, leaf_hash = :leaf WHERE seq = :seq",
            "UPDATE ledger_entries SET digest = :digest, leaf_hash = :old_leaf WHERE seq = :seq",
            {"seq": target, "forged": FORGED, "leaf": consistent_leaf, "digest": row.digest, "old_leaf": row.leaf_hash},
        ),
        (
            "条目序号不连续",
            "ledger_entries",
            "DELETE FROM ledger_entries WHERE seq = :seq",
            "INSERT INTO ledger_entries (seq, kind, subject, digest, leaf_hash, recorded_at)"
            " VALUES (:seq, :kind, :subject, :digest, :leaf, :at)",
            {
                "seq": target,
                "kind": row.kind,
                "subject": row.subject,
                "digest": row.digest,
                "leaf": row.leaf_hash,
                "at": row.recorded_at,
            },
        ),
        (
            f"树头 size={last.size}：SM2 签名无效",
            "ledger_tree_heads",
            "UPDATE ledger_tree_heads SET root_hash = :forged WHERE size = :size",
            "UPDATE ledger_tree_heads SET root_hash = :root WHERE size = :size",
            {"size": last.size, "forged": FORGED, "root": bytes.fromhex(last.root_hash)},
        ),
        (
            f"树头 size={last.size}：时间戳无效",
            "ledger_tree_heads",
            "UPDATE ledger_tree_heads SET signature = :forged WHERE size = :size",
            "UPDATE ledger_tree_heads SET signature = :signature WHERE size = :size",
            {"size": last.size, "forged": FORGED, "signature": bytes.fromhex(last.signature)},
        ),
        (
            "子树哈希 (层 8, 位置 1)",
            "ledger_nodes",
            "UPDATE ledger_nodes SET hash = :forged WHERE level = 8 AND index = 1",
            "UPDATE ledger_nodes SET hash = :hash WHERE level = 8 AND index = 1",
            {"forged": FORGED, "hash": (await _node(world, 8, 1))},
        ),
    ]


async def _node(world: LedgerWorld, level: int, index: int) -> bytes:
    async with world.sessions() as session:
        found: bytes = (
            await session.execute(
                text("SELECT hash FROM ledger_nodes WHERE level = :level AND index = :index"),
                {"level": level, "index": index},
            )
        ).scalar_one()
    return found


async def test_audit_passes_and_catches_every_tampered_row(world: LedgerWorld, heads: list[TreeHead]) -> None:
    report = await world.audit()
    assert report.ok, report.problems
    assert report.entries >= POPULATION
    assert report.heads >= len(heads)
    assert report.nodes >= 3

    for expected, table, change, undo, params in await _tamper_cases(world, heads):
        async with behind_the_trigger(world.sessions, table, change, undo, params):
            report = await world.audit()
            assert not report.ok
            assert any(expected in problem for problem in report.problems), (expected, report.problems)
        assert (await world.audit()).ok

    # A head signed by a key the auditor does not trust is reported too.
    stranger = Sm2PrivateKey.generate().public_key()
    report = await audit(world.sessions, {key_id(stranger): stranger}, world.tsa.trust_anchors)
    assert any("不在受信任的密钥中" in problem for problem in report.problems)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, world: LedgerWorld, database_url: str) -> Iterator[None]:
    """The CLI reads its settings from the environment: point them at this test's database, key and TSA."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("QIHUANG_TSA_SANDBOX_KEY_DIR", world.settings.tsa_sandbox_key_dir)
    monkeypatch.setenv("QIHUANG_LEDGER_SIGNING_KEY_FILE", world.settings.ledger_signing_key_file)
    monkeypatch.setenv("QIHUANG_ADAPTER_TSA", "sandbox")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_cli_verify_and_prove(
    world: LedgerWorld, heads: list[TreeHead], cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # In a thread: the CLI runs its own event loop, as it does from a shell.
    assert await asyncio.to_thread(cli_main, ["ledger", "verify"]) == 0
    assert "通过 / OK" in capsys.readouterr().out

    case = (await _tamper_cases(world, heads))[0]
    async with behind_the_trigger(world.sessions, *case[1:]):
        assert await asyncio.to_thread(cli_main, ["ledger", "verify"]) == 1
        output = capsys.readouterr().out
        assert "FAILED" in output and case[0] in output

    assert await asyncio.to_thread(cli_main, ["ledger", "prove", "7"]) == 0
    answer = json.loads(capsys.readouterr().out)
    proof, head = answer["proof"], answer["tree_head"]
    assert answer["entry"]["seq"] == 7 and head["size"] == proof["tree_size"]
    merkle.verify_inclusion(
        bytes.fromhex(answer["entry"]["leaf_hash"]),
        7,
        proof["tree_size"],
        [bytes.fromhex(node) for node in proof["path"]],
        bytes.fromhex(head["root_hash"]),
    )
    assert await asyncio.to_thread(cli_main, ["ledger", "prove", str(10**9)]) == 1


async def test_heads_are_anchored_once_and_the_audit_reads_them_back_from_the_chain(
    world: LedgerWorld,
    heads: list[TreeHead],
    cli_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chain = SandboxLedgerAnchor(world.sessions, world.settings)
    anchoring = LedgerActivities(world.ledger, world.key, world.tsa, chain, world.sessions)
    head = heads[-1]
    receipt = await ActivityEnvironment().run(anchoring.anchor_tree_head, head)
    assert receipt is not None
    assert (receipt.chain, receipt.size, receipt.root_hash, receipt.signature) == (
        chain.chain,
        head.size,
        head.root_hash,
        head.signature,
    )
    # The Schedule's next run with nothing appended anchors nothing new.
    assert await ActivityEnvironment().run(anchoring.anchor_tree_head, head) == receipt
    async with world.sessions() as session:
        anchored = (
            await session.execute(text("SELECT tx_id FROM ledger_anchors WHERE size = :s"), {"s": head.size})
        ).all()
    assert [row.tx_id for row in anchored] == [receipt.tx_id]
    # Without a chain configured, anchoring is a no-op.
    assert await ActivityEnvironment().run(world.activities.anchor_tree_head, head) is None

    monkeypatch.setenv("QIHUANG_ADAPTER_LEDGER_ANCHOR", "sandbox")
    get_settings.cache_clear()
    assert await asyncio.to_thread(cli_main, ["ledger", "verify"]) == 0
    assert "通过 / OK" in capsys.readouterr().out

    # The chain now holds another root for that transaction: the audit names the anchor and fails.
    held = text("SELECT id, response FROM sandbox_calls WHERE system = 'ledger_anchor' AND response->>'tx_id' = :tx")
    async with world.sessions() as session, session.begin():
        row = (await session.execute(held, {"tx": receipt.tx_id})).one()
        forged = {**row.response, "root_hash": "00" * 32}
        await session.execute(
            text("UPDATE sandbox_calls SET response = CAST(:r AS jsonb) WHERE id = :id"),
            {"r": json.dumps(forged), "id": row.id},
        )
    try:
        assert await asyncio.to_thread(cli_main, ["ledger", "verify"]) == 1
        output = capsys.readouterr().out
        assert "FAILED" in output and f"树头 size={head.size} 的链上锚定" in output and "根哈希与账本树头不符" in output
    finally:
        async with world.sessions() as session, session.begin():
            await session.execute(
                text("UPDATE sandbox_calls SET response = CAST(:r AS jsonb) WHERE id = :id"),
                {"r": json.dumps(row.response), "id": row.id},
            )

    # A process with no adapter for that chain lists the anchor as unchecked; the ledger itself still passes.
    monkeypatch.setenv("QIHUANG_ADAPTER_LEDGER_ANCHOR", "")
    get_settings.cache_clear()
    assert await asyncio.to_thread(cli_main, ["ledger", "verify"]) == 0
    assert "未核对的锚定" in capsys.readouterr().out
