"""`qihuang ledger verify` and `qihuang ledger prove <seq>`: audit the evidence ledger; show one entry's proof.

Both read the database the settings name (the embedded dev server when DATABASE_URL is unset), trust the public half of
the configured ledger signing key and the configured TSA's trust anchors, and never write to the ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.settings import Settings, get_settings

Task = Callable[[async_sessionmaker[AsyncSession], Settings], Awaitable[int]]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `ledger` command with its subcommands, under the CLI's subparsers."""
    ledger = commands.add_parser("ledger", help="存证账本：校验、出具存在证明")
    actions = ledger.add_subparsers(dest="ledger_command", required=True, metavar="操作")
    verify = actions.add_parser(
        "verify",
        help="重算全部叶子、树根与子树哈希，校验树头签名、时间戳与一致性，核对链上锚定；有问题时以非零状态退出",
    )
    verify.set_defaults(run=lambda a: _run(_verify))
    prove = actions.add_parser("prove", help="输出一个条目的存在证明（审计路径）和对应的已签名树头（JSON）")
    prove.add_argument("seq", type=int, help="条目序号（从 0 开始）")
    prove.add_argument("--size", type=int, default=None, help="树的大小（默认：最新已签名树头）")
    prove.set_defaults(run=lambda a: _run(lambda sessions, settings: _prove(sessions, a.seq, a.size)))


def _run(task: Task) -> int:
    from core.db import make_engine, make_sessionmaker
    from workers import devstack

    settings = get_settings()

    async def run() -> int:
        url = await devstack.database_url(settings)
        db_settings = settings.model_copy(update={"database_url": url})
        engine = make_engine(db_settings, pool_size=2)
        try:
            return await task(make_sessionmaker(engine), db_settings)
        finally:
            await engine.dispose()
            if devstack.uses_embedded_postgres(settings):
                devstack.stop_embedded_postgres()

    return asyncio.run(run())


async def _verify(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    from activities.adapters.registry import load_adapter, load_optional
    from core.ledger.anchors import audit_anchors
    from core.ledger.audit import audit
    from core.ledger.encoding import key_id
    from core.ledger.keys import load_signing_key

    public_key = load_signing_key(settings).public_key()
    tsa = load_adapter("tsa", settings.adapter_tsa, sessions, settings)
    report = await audit(sessions, {key_id(public_key): public_key}, tsa.trust_anchors)
    # Anchors on a consortium chain, when there are any: each is read back from the chain and compared with its head.
    chain = load_optional("ledger_anchor", settings.adapter_ledger_anchor, sessions, settings)
    anchored = await audit_anchors(
        sessions, chain.chain if chain else None, (lambda tx_id: chain.fetch(tx_id=tx_id)) if chain else None
    )
    for problem in anchored.problems:
        report.problem(problem)
    print("存证账本校验 / ledger verification")
    print(f"  条目 entries:                {report.entries}")
    print(f"  已签名树头 signed tree heads: {report.heads}")
    print(f"  子树哈希 subtree hashes:      {report.nodes}")
    print(f"  链上锚定 chain anchors:       {anchored.checked}")
    if anchored.unchecked:
        print(f"  未核对的锚定 unchecked anchors（未配置其所在链的适配器）: {len(anchored.unchecked)}")
    if report.ok:
        print("结果 result: 通过 / OK")
        return 0
    print(f"结果 result: 发现 {report.problem_count} 处问题 / FAILED ({report.problem_count} problems)")
    for problem in report.problems:
        print(f"  - {problem}")
    if report.problem_count > len(report.problems):
        print(f"  …… 其余 {report.problem_count - len(report.problems)} 处未列出")
    return 1


async def _prove(sessions: async_sessionmaker[AsyncSession], seq: int, size: int | None) -> int:
    from core.ledger import merkle
    from core.ledger.service import EvidenceLedger, ProofUnavailable

    ledger = EvidenceLedger(sessions)
    entry = await ledger.entry(seq)
    if entry is None:
        print(f"没有序号为 {seq} 的条目", file=sys.stderr)
        return 1
    try:
        proof = await ledger.prove(seq, size)
    except ProofUnavailable as exc:
        print(f"无法出具证明：{exc}", file=sys.stderr)
        return 1
    # Checked before it is handed out: a proof that does not verify here would only mislead whoever receives it.
    try:
        merkle.verify_inclusion(
            bytes.fromhex(proof.leaf_hash),
            proof.seq,
            proof.tree_size,
            [bytes.fromhex(node) for node in proof.path],
            bytes.fromhex(proof.root_hash),
        )
    except merkle.InvalidProof as exc:
        print(f"证明未通过自检（{exc}），请运行 qihuang ledger verify", file=sys.stderr)
        return 1
    head = await ledger.head(proof.tree_size)
    answer = {
        "entry": entry.model_dump(mode="json"),
        "proof": proof.model_dump(mode="json"),
        "tree_head": None if head is None else head.model_dump(mode="json"),
    }
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    return 0
