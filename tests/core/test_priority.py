"""Lowering a process's priority: its own nice value always, its session's only when it leads the session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.priority import lower_priority

AUTOGROUPS = Path("/proc/self/autogroup").exists()


def _autogroup(pid: int) -> str:
    # Empty for a process still in the boot session's autogroup (a container's init often is): it has no nice value.
    return Path(f"/proc/{pid}/autogroup").read_text()


def _group_nice(pid: int) -> int:
    return int(_autogroup(pid).split("nice")[-1])


def _sleeper(*, own_session: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=own_session)


def test_a_session_leader_gets_its_own_and_its_sessions_nice_value_raised() -> None:
    child = _sleeper(own_session=True)
    try:
        lower_priority(5, child.pid)
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == os.getpriority(os.PRIO_PROCESS, 0) + 5
        if AUTOGROUPS:
            assert _group_nice(child.pid) == 5
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(not AUTOGROUPS, reason="the kernel has no scheduler autogroups")
def test_a_process_sharing_its_launchers_session_leaves_the_session_alone() -> None:
    before = _autogroup(os.getpid())
    child = _sleeper(own_session=False)
    try:
        lower_priority(5, child.pid)
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == os.getpriority(os.PRIO_PROCESS, 0) + 5
        assert _autogroup(child.pid) == before == _autogroup(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_nothing_to_add_changes_nothing() -> None:
    child = _sleeper(own_session=True)
    try:
        lower_priority(0, child.pid)
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == os.getpriority(os.PRIO_PROCESS, 0)
    finally:
        child.kill()
        child.wait()
