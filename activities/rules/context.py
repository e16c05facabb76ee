"""What every rule needs while checking one prescription: the facts of the request and the policy."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from activities.rules.config import RANK, ChildDosePolicy, EngineConfig
from activities.rules.knowledge import Herb, Regulations
from activities.rules.names import GENERIC_NAMES
from models.prescription import CheckRequest, Finding, RxItem, Severity


class Resolved(NamedTuple):
    """A written name after lookup, cached per spelling."""

    norm: str
    herbs: tuple[Herb, ...]  # every canonical herb the name may mean; empty when unknown
    keys: tuple[str, ...]  # what repeats and allergies compare: the canonical names, else the normalized name
    checks: tuple[tuple[Herb, tuple[HerbRule, ...]], ...]  # each herb with the rules that can fire for it


class Policy:
    """Severities resolved once from an `EngineConfig`, so a finding costs one dict lookup."""

    __slots__ = ("cap", "config", "severities")

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.severities = config.resolved_severities()
        self.cap = config.uncertain_max_severity

    def severity(self, key: str, uncertain: bool = False) -> Severity:
        severity = self.severities[key]
        if uncertain and RANK[severity] > RANK[self.cap]:
            return self.cap
        return severity


class Rx:
    """One check's facts, computed once instead of by every rule."""

    __slots__ = (
        "age",
        "child_fraction",
        "child_fraction_text",
        "child_policy",
        "doses",
        "is_child",
        "items_count",
        "online",
        "policy",
        "pregnant",
        "regs",
    )

    def __init__(self, req: CheckRequest, policy: Policy, regs: Regulations) -> None:
        config = policy.config
        self.policy = policy
        self.regs = regs
        self.age = req.patient.age_years
        self.pregnant = req.patient.pregnant
        self.is_child = self.age < config.child_age_limit_years
        self.child_policy: ChildDosePolicy | None = config.child_dose if self.is_child else None
        fraction = self.child_policy.fraction(self.age) if self.child_policy else None
        # Rules compare with the float and quote the fraction; both are worked out once per check.
        self.child_fraction = float(fraction) if fraction is not None else None
        self.child_fraction_text = str(fraction) if fraction is not None else ""
        self.online = req.online
        # 饮片 quantity is counted in 剂 and ChP doses are daily: a 剂 is taken to last the usual one day.
        self.doses = req.doses
        self.items_count = len(req.items)

    def severity(self, key: str, uncertain: bool = False) -> Severity:
        return self.policy.severity(key, uncertain)


HerbRule = Callable[[list[Finding], Rx, RxItem, str, Herb], None]


def label(written: str, norm: str, herb: Herb) -> str:
    """The doctor's name, with the canonical one when they differ (黑顺片（附子）), so the message is unambiguous."""
    if norm == herb.name:
        return written
    if norm in GENERIC_NAMES:
        return f"{written}（可指{herb.name}）"
    return f"{written}（{herb.name}）"


def grams(value: float) -> str:
    return f"{round(value, 4):g}g"


def age_text(age_years: float) -> str:
    if age_years < 1:
        return f"{math.floor(age_years * 12)}月龄"
    return f"{age_years:g}岁"
