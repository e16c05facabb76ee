"""Throughput of the prescription rule engine on realistic 15-herb prescriptions.

Each prescription is a classic formula from the knowledge file, filled up to 15 herbs with common herbs at
doses inside, and sometimes just outside, the ChP range; patients vary in age, pregnancy and allergies, so the
run exercises the rules that fire as well as the clean path. Prints one JSON line.

    .venv/bin/python bench/rx_check.py [--seconds 3]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    engine = RuleEngine.load()
    requests = build_requests(random.Random(20240601))
    for req in requests:  # warm the name cache, as a long-running worker would be
        engine.check(req)
    timings: list[int] = []
    clock = time.perf_counter_ns
    deadline = clock() + int(args.seconds * 1e9)
    started = clock()
    while clock() < deadline:
        for req in requests:
            t0 = clock()
            engine.check(req)
            timings.append(clock() - t0)
    elapsed_s = (clock() - started) / 1e9
    quantiles = statistics.quantiles(timings, n=100)
    print(
        json.dumps(
            {
                "bench": "rx_check",
                "checks": len(timings),
                "checks_per_s": round(len(timings) / elapsed_s),
                "p50_us": round(quantiles[49] / 1000, 1),
                "p99_us": round(quantiles[98] / 1000, 1),
            },
            separators=(",", ":"),
        )
    )


if __name__ == "__main__":
    main()
