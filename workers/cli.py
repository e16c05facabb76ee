"""`qihuang`: one command for the process entry points and the maintenance tasks."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.settings import get_settings
from workers import devstack, ledger_cli

log = logging.getLogger("stack")


def _database_task(*, seed: bool) -> int:
    devstack.configure_console_logging()
    settings = get_settings()
    if seed and settings.is_production:
        log.error("the demo hospital is never seeded into a production database")
        return 1

    async def run() -> None:
        url = await devstack.database_url(settings)
        try:
            await devstack.migrate(url, settings, seed=seed)
        finally:
            if devstack.uses_embedded_postgres(settings):
                devstack.stop_embedded_postgres()

    asyncio.run(run())
    return 0


def _delegate(name: str, entry: Callable[[], Any], args: list[str]) -> int:
    """Run another module's `main` as if it had been started on its own with `args`."""
    sys.argv = [f"qihuang {name}", *args]
    result = entry()
    if inspect.iscoroutine(result):
        result = asyncio.run(result)
    return result if isinstance(result, int) else 0


def _worker(args: argparse.Namespace) -> int:
    from workers.worker import main as worker_main  # imported here: it pulls in every workflow and activity

    return _delegate("worker", worker_main, args.args)


def _demo(args: argparse.Namespace) -> int:
    from workers.demo import main as demo_main

    stack = devstack.read_stack_file()
    if stack is None:
        print("未发现正在运行的开发环境（.qihuang/stack.json）；请先在另一个终端运行 make dev", file=sys.stderr)
    else:
        # Point the demo's settings at the running stack unless the caller chose otherwise.
        os.environ.setdefault("QIHUANG_API_BASE_URL", stack["api"])
        os.environ.setdefault("TEMPORAL_ADDRESS", stack["temporal_address"])
        os.environ.setdefault("TEMPORAL_NAMESPACE", stack["temporal_namespace"])
    return _delegate("demo", demo_main, args.args)


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    # The API logs each request itself, structured; uvicorn's access log would repeat it.
    uvicorn.run("api.main:app", host=args.host, port=args.port, access_log=False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qihuang", description="岐黄：中医互联网医院平台")
    commands = parser.add_subparsers(dest="command", required=True, metavar="命令")

    dev = commands.add_parser("dev", help="启动本地开发环境：数据库、Temporal、迁移、演示数据、worker 与 API")
    dev.add_argument(
        "--config", type=Path, default=devstack.DEFAULT_CONFIG, help="开发环境配置（默认 temporal-dev.yml）"
    )
    dev.set_defaults(run=lambda a: devstack.start(a.config))

    migrate = commands.add_parser("migrate", help="把数据库结构升级到最新版本")
    migrate.set_defaults(run=lambda a: _database_task(seed=False))

    seed = commands.add_parser("seed", help="写入演示医院数据（可重复执行；生产环境拒绝）")
    seed.set_defaults(run=lambda a: _database_task(seed=True))

    worker = commands.add_parser("worker", help="运行 Temporal worker")
    worker.add_argument("args", nargs=argparse.REMAINDER, help="传给 worker 的参数")
    worker.set_defaults(run=_worker)

    api = commands.add_parser("api", help="运行 HTTP API（uvicorn）")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.set_defaults(run=_api)

    demo = commands.add_parser("demo", help="对正在运行的开发环境演示完整就诊流程")
    demo.add_argument("args", nargs=argparse.REMAINDER, help="传给演示程序的参数")
    demo.set_defaults(run=_demo)

    ledger_cli.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
