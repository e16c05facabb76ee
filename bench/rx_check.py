"""Throughput of the prescription rule engine on realistic 15-herb prescriptions.

Each prescription is a classic formula from the knowledge file, filled up to 15 herbs with common herbs at
doses inside, and sometimes just outside, the ChP range; patients vary in age, pregnancy and allergies, so the
run exercises the rules that fire as well as the clean path. Prints one JSON line.

The run is split into rounds (5 of 1 s by default); `checks_per_s`, `p50_us` and `p99_us` are those of the fastest
round, as `timeit` advises: on a shared machine a slow round measures the neighbours rather than the engine (on this
2-vCPU machine rounds of the same code range from the best rate to about 1.6 times slower). Every round's rate is
listed in `rounds`, and `all_p99_us` is the p99 over all of them.

    .venv/bin/python bench/rx_check.py [--rounds 5] [--seconds 1]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from activities.rules.engine import RuleEngine
from activities.rules.knowledge import DEFAULT_PATH
from models.prescription import CheckRequest, PatientFacts, RxItem

HERBS_PER_RX = 15
DISTINCT_RX = 500


def build_requests(rng: random.Random) -> list[CheckRequest]:
    data = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    herbs = {herb["name"]: herb for herb in data["herbs"]}
    # Filler herbs a doctor commonly adds: dosed, not toxic, not forbidden in pregnancy.
    common = [
        herb
        for herb in data["herbs"]
        if herb["min_g"] and herb["max_g"] and not herb["toxic"] and herb["pregnancy"] != "forbidden"
    ]
    requests = []
    for _ in range(DISTINCT_RX):
        formula = rng.choice(data["classic_formulas"])
        items: list[RxItem] = []
        for line in formula["herbs"]:
            herb = herbs[line["herb"]]
            # Lines given as pieces (大枣 3枚) have no grams; use the bottom of the ChP range.
            dose = line.get("dose_g") or herb["min_g"] or 6
            items.append(RxItem(herb=line["herb"], dose_g=dose, decoction=line.get("decoction")))
        present = {item.herb for item in items}
        while len(items) < HERBS_PER_RX:
            herb = rng.choice(common)
            if herb["name"] in present:
                continue
            present.add(herb["name"])
            # Some lines use an alias; annotated ones ("关黄柏(另一药典品种)") are notes, not names.
            aliases = [alias for alias in herb.get("aliases", []) if "(" not in alias]
            name = rng.choice([herb["name"], *aliases]) if rng.random() < 0.2 else herb["name"]
            high = herb["max_g"] * (1.3 if rng.random() < 0.1 else 1.0)
            dose = max(0.1, round(rng.uniform(herb["min_g"], high) * 2) / 2)
            method = herb["decoction"] if rng.random() < 0.8 else None
            items.append(RxItem(herb=name, dose_g=dose, decoction=method))
        rng.shuffle(items)
        pregnant = rng.random() < 0.1
        patient = PatientFacts(
            age_years=rng.choice([0.5, 4, 9, 16, 35, 52, 68, 80]) if not pregnant else rng.uniform(20, 40),
            sex="female" if pregnant or rng.random() < 0.5 else "male",
            pregnant=pregnant,
            allergies=rng.choice([[], [], [], ["青霉素"], ["甘草"], ["贝母", "花粉"]]),
        )
        requests.append(
            CheckRequest(
                patient=patient,
                items=items,
                doses=rng.choice([3, 5, 7, 7, 7, 14]),
                days=rng.choice([None, None, None, 2, 3]),
                online=rng.random() < 0.8,
            )
        )
    return requests


def run_round(engine: RuleEngine, requests: list[CheckRequest], seconds: float) -> tuple[float, list[int]]:
    """Checks per second over the round and each check's time in ns."""
    timings: list[int] = []
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    started = clock()
    while clock() < deadline:
        for req in requests:
            t0 = clock()
            engine.check(req)
            timings.append(clock() - t0)
    return len(timings) / ((clock() - started) / 1e9), timings


def _us(timings: list[int], percentile: int) -> float:
    return round(statistics.quantiles(timings, n=100)[percentile - 1] / 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="per round")
    args = parser.parse_args()
    engine = RuleEngine.load()
    requests = build_requests(random.Random(20240601))
    for req in requests:  # warm the name cache, as a long-running worker would be
        engine.check(req)
    rounds = [run_round(engine, requests, args.seconds) for _ in range(max(1, args.rounds))]
    best_rate, best_timings = max(rounds, key=lambda result: result[0])
    print(
        json.dumps(
            {
                "bench": "rx_check",
                "checks": sum(len(timings) for _, timings in rounds),
                "checks_per_s": round(best_rate),
                "p50_us": _us(best_timings, 50),
                "p99_us": _us(best_timings, 99),
                "rounds": [round(rate) for rate, _ in rounds],
                "all_p99_us": _us([t for _, timings in rounds for t in timings], 99),
            },
            separators=(",", ":"),
        )
    )


if __name__ == "__main__":
    main()
