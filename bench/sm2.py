"""SM2 sign and verify throughput on each available backend of core.crypto.sm2.

Workload as in notes/integrations.md §1.2: a 1 KiB message, Z_A with the default signer ID, SM3 included, one
thread. Each operation runs for the given time per backend. Prints one JSON line.

    .venv/bin/python bench/sm2.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.crypto import sm2


def rate(operation: Callable[[], object], seconds: float) -> float:
    operation()  # warm up: the Python backend builds its table of multiples of G on first use
    count = 0
    clock = time.perf_counter
    started = clock()
    deadline = started + seconds
    while clock() < deadline:
        operation()
        count += 1
    return count / (clock() - started)


def measure(name: str, message: bytes, seconds: float) -> dict[str, float]:
    with sm2.use_backend(name):
        key = sm2.Sm2PrivateKey.generate()
    public = key.public_key()
    signature = key.sign(message)
    return {
        "signs_per_s": round(rate(lambda: key.sign(message), seconds), 1),
        "verifies_per_s": round(rate(lambda: public.verify(signature, message), seconds), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    message = os.urandom(1024)
    results = {name: measure(name, message, args.seconds) for name in sm2.available_backends()}
    print(json.dumps({"bench": "sm2", "default": sm2.backend_name(), **results}, separators=(",", ":")))


if __name__ == "__main__":
    main()
