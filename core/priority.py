"""Lowering a process's CPU priority where the Linux scheduler will heed it.

On one host shared by the API and background work (the dev stack, the benchmarks), a release-time rush should be
answered first and the flows it started caught up a moment later. A nice value alone does not do that on most Linux
distributions: with `sched_autogroup` the scheduler first shares the CPUs fairly between sessions, and a process's
nice value only ranks it against the processes of its own session. A process that leads its own session (as the dev
stack starts each service) also gets its session's nice value lowered, through `/proc/<pid>/autogroup`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

MAX_NICE = 19


def lower_priority(nice: int, pid: int = 0) -> None:
    """Add `nice` to the nice value of process `pid` (0: this one) and, if it leads its session, of its session.

    A process's own nice value covers the threads it starts afterwards; for another process, call this before it
    starts threads of its own, or rely on the session's value, which covers all of it."""
    if nice <= 0:
        return
    target = pid or os.getpid()
    current = os.getpriority(os.PRIO_PROCESS, target)
    os.setpriority(os.PRIO_PROCESS, target, min(MAX_NICE, current + nice))
    if os.getsid(target) != target:
        return  # its session is its launcher's too (a shell): lowering that would slow everything started there
    with contextlib.suppress(OSError, ValueError):  # no autogroups (another OS, or the feature is off)
        autogroup = Path(f"/proc/{target}/autogroup")
        group_nice = int(autogroup.read_text().split("nice")[-1])
        autogroup.write_text(str(min(MAX_NICE, group_nice + nice)))
