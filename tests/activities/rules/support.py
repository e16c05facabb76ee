"""Helpers shared by the rule-engine tests: build requests tersely and pick findings out of results."""

from __future__ import annotations

import json
from typing import Any

from activities.rules.knowledge import DEFAULT_PATH
from models.prescription import CheckRequest, CheckResult, Finding, PatientFacts, RxItem

DATA: dict[str, Any] = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
HERBS: dict[str, dict[str, Any]] = {herb["name"]: herb for herb in DATA["herbs"]}
ADULT = {"age_years": 40, "sex": "male"}
PREGNANT = {"age_years": 30, "sex": "female", "pregnant": True}


def line(herb: str, dose_g: float | None = None, decoction: str | None = None) -> RxItem:
    """A prescription line; without a dose, the herb's ChP minimum (or 1g when ChP gives none)."""
    if dose_g is None:
        dose_g = (HERBS.get(herb) or {}).get("min_g") or 1
    return RxItem(herb=herb, dose_g=dose_g, decoction=decoction)


def rx(*items: RxItem | str, patient: dict[str, Any] | None = None, **kwargs: Any) -> CheckRequest:
    lines = [item if isinstance(item, RxItem) else line(item) for item in items]
    kwargs.setdefault("doses", 7)
    return CheckRequest(patient=PatientFacts(**(patient or ADULT)), items=lines, **kwargs)


def found(result: CheckResult, code: str) -> list[Finding]:
    return [finding for finding in result.findings if finding.code == code]


def only(result: CheckResult, code: str) -> Finding:
    matches = found(result, code)
    assert len(matches) == 1, f"expected one {code}, got {result.findings}"
    return matches[0]
