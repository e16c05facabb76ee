"""The worker as a separate OS process (`python -m workers.worker`) on a test's own task queue, for the durability
tests that SIGKILL it mid-way and restart it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WORKER_READY_S = 30.0


@dataclass
class WorkerProcess:
    """`python -m workers.worker` on the test's own queue; its JSON log goes to a file, not to the test output."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    started: list[int] = field(default_factory=list)

    def start(self) -> None:
        self.log_path.write_text("")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workers.worker"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append(self.process.pid)

    def ready(self) -> bool:
        """True once the worker logged that it polls; raises if the process died before that."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"worker exited with {self.process.returncode} before it was ready:\n{self.log_tail()}"
            )
        return "worker started" in self.log_path.read_text(errors="replace")

    def sigkill(self) -> None:
        """SIGKILL this process (only this pid) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """A graceful SIGTERM first, SIGKILL if it does not go within a few seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.sigkill()

    def log_tail(self, lines: int = 20) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
            return "\n".join(line[:400] for line in tail)
        except OSError:
            return "(no worker log)"


async def wait_ready(worker: WorkerProcess) -> None:
    deadline = time.monotonic() + WORKER_READY_S
    while not worker.ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"worker not ready after {WORKER_READY_S:.0f} s:\n{worker.log_tail()}")
        await asyncio.sleep(0.1)


async def restart(worker: WorkerProcess, pause_s: float) -> None:
    """Start the worker again `pause_s` after it was killed, and wait until it polls."""
    await asyncio.sleep(pause_s)
    worker.start()
    await wait_ready(worker)


def worker_env(database_url: str, temporal_address: str, task_queue: str, tsa_keys: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QIHUANG_")}
    env.update(
        DATABASE_URL=database_url,
        TEMPORAL_ADDRESS=temporal_address,
        # The worker stamps signatures and the API (in this process) verifies them: one sandbox TSA for both.
        QIHUANG_TSA_SANDBOX_KEY_DIR=str(tsa_keys),
        QIHUANG_TASK_QUEUE=task_queue,
        QIHUANG_INTEGRATION_TASK_QUEUE=f"{task_queue}-integrations",
        QIHUANG_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    return env
