"""What every rule needs while checking one prescription: the facts of the request and the policy."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypedDict

from activities.rules.config import RANK, EngineConfig
from activities.rules.knowledge import Herb, Regulations
from models.prescription import CheckRequest, RxItem, Severity


class FindingData(TypedDict):
    """A finding as the rules write it. The engine validates a check's list into `Finding` models in one call at the
    end: rules compare and drop findings while checking, and one validation costs far less than one per finding."""

    code: str
    severity: Severity
    herbs: list[str]
    message: str
    source: str


# Slotted dataclasses rather than named tuples: a check reads their fields for every line, and slot reads are the
# attribute loads the interpreter makes fastest.
@dataclass(frozen=True, slots=True)
class Species:
    """One canonical herb a written name may mean, with the rules that can fire for that spelling of it."""

    herb: Herb
    label: str  # how findings name the line: the doctor's name, with the canonical one when they differ
    rules: tuple[HerbRule, ...]
    # What dose findings quote, formatted once: the ChP maximum and minimum ("10g", "" when none) and range.
    max_text: str
    min_text: str
    span: str


@dataclass(frozen=True, slots=True)
class Resolved:
    """A written name after lookup, worked out at its first lookup and cached per spelling."""

    norm: str
    herbs: tuple[Herb, ...]  # every canonical herb the name may mean; empty when unknown
    keys: tuple[str, ...]  # what repeats and allergies compare: the canonical names, else the normalized name
    species: tuple[Species, ...]  # `herbs`, each with what checking it needs
    allergy_keys: tuple[str, ...]  # what an allergy matches: the normalized name, then `keys`
    # 十八反/十九畏 as bit sets, one bit per herb that has a partner: `pair_bits` are this name's herbs, `partner_bits`
    # the herbs they must not be combined with. Both are 0 for most names; a check ANDs them instead of scanning rules.
    pair_bits: int
    partner_bits: int
    only: Species | None = field(init=False)  # the species when the name means exactly one

    def __post_init__(self) -> None:
        object.__setattr__(self, "only", self.species[0] if len(self.species) == 1 else None)


class Policy:
    """Severities resolved once from an `EngineConfig`, so a finding costs one dict lookup."""

    __slots__ = ("child_bands", "config", "severities", "uncertain_severities")

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.severities = config.resolved_severities()
        cap = config.uncertain_max_severity
        # Data marked uncertain never ranks above the cap; capped once here rather than on every finding.
        self.uncertain_severities = {
            key: cap if RANK[severity] > RANK[cap] else severity for key, severity in self.severities.items()
        }
        # Each age band's fraction as rules compare it and as child-dose messages quote it.
        child = config.child_dose
        self.child_bands: tuple[tuple[float, str], ...] = ()
        if child is not None:
            self.child_bands = tuple((float(f), f"按{child.name}约为成人量的{f}，") for _, f in child.bands)

    def severity(self, key: str, uncertain: bool = False) -> Severity:
        return (self.uncertain_severities if uncertain else self.severities)[key]


class Rx:
    """One check's facts, computed once instead of by every rule."""

    __slots__ = (
        "age",
        "child_dose_intro",
        "child_dose_source",
        "child_fraction",
        "doses",
        "is_child",
        "items_count",
        "online",
        "pregnant",
        "regs",
        "severity",
    )

    def __init__(self, req: CheckRequest, policy: Policy, regs: Regulations) -> None:
        config = policy.config
        patient = req.patient
        self.severity = policy.severity
        self.regs = regs
        self.age = age = patient.age_years
        self.pregnant = patient.pregnant
        self.is_child = age < config.child_age_limit_years
        child_policy = config.child_dose if self.is_child else None
        band = child_policy.band(age) if child_policy else None
        # What every child-dose message of this check opens with is written once.
        self.child_fraction: float | None = None
        self.child_dose_intro = self.child_dose_source = ""
        if child_policy is not None and band is not None:
            self.child_fraction, fraction_text = policy.child_bands[band]
            self.child_dose_intro = f"患儿{age_text(age)}，{fraction_text}"
            self.child_dose_source = child_policy.source
        self.online = req.online
        # 饮片 quantity is counted in 剂 and ChP doses are daily: a 剂 is taken to last the usual one day.
        self.doses = req.doses
        self.items_count = len(req.items)


HerbRule = Callable[[list[FindingData], Rx, RxItem, Species], None]


# Doses repeat (9g, 12g …), and formatting one is a good part of writing a dose message.
@lru_cache(maxsize=4096)
def grams(value: float) -> str:
    return f"{round(value, 4):g}g"


def age_text(age_years: float) -> str:
    if age_years < 1:
        return f"{math.floor(age_years * 12)}月龄"
    return f"{age_years:g}岁"
