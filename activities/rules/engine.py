"""The offline prescription pre-review: one `RuleEngine` per process, built once, then pure lookups per check.

The engine only flags. A doctor signs (again, where a finding asks for it) and a pharmacist approves; the
internet-diagnosis rules forbid generating prescriptions automatically.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path

from activities.rules import herb_rules, rx_rules
from activities.rules.codes import RULE_CODES, UNKNOWN_HERB
from activities.rules.config import RANK, EngineConfig
from activities.rules.context import FindingData, Policy, Resolved, Rx, Species
from activities.rules.knowledge import Knowledge, load_knowledge
from activities.rules.names import normalize_name
from models.prescription import CheckRequest, CheckResult, RxItem, Severity, Verdict

_VERDICT = {
    Severity.INFO: Verdict.PASS,
    Severity.WARN: Verdict.WARN,
    Severity.SIGN_AGAIN: Verdict.SIGN_AGAIN,
    Severity.BLOCK: Verdict.BLOCK,
}

# The model's own validator, called straight: `model_validate` spends as long again in Python around the same call.
_validate_result = CheckResult.__pydantic_validator__.validate_python

# Written names are remembered after the first lookup; past this many, new spellings are looked up each time
# instead, so that arbitrary input cannot grow the cache without bound.
_CACHE_LIMIT = 50_000


class RuleEngine:
    def __init__(self, knowledge: Knowledge, config: EngineConfig | None = None) -> None:
        self.knowledge = knowledge
        self.config = config or EngineConfig()
        self._policy = Policy(self.config)
        self._resolved: dict[str, Resolved] = {}
        self._pair_bit = {name: 1 << bit for bit, name in enumerate(knowledge.pairs)}
        names = dict(knowledge.names)
        if self.config.resolve_uncertain_aliases:
            for alias, canonical in knowledge.uncertain_aliases.items():
                names.setdefault(alias, canonical)
        self._names = names
        for name in names:
            self._resolved[name] = self._lookup(name)

    @classmethod
    def load(cls, path: Path | str | None = None, config: EngineConfig | None = None) -> RuleEngine:
        """Build from a knowledge file; the default is the copy shipped next to this module."""
        return cls(load_knowledge(path), config)

    def check(self, req: CheckRequest) -> CheckResult:
        rx = Rx(req, self._policy, self.knowledge.regulations)
        items = req.items
        cached, resolve = self._resolved.get, self._resolve
        resolved: list[Resolved] = []
        findings: list[FindingData] = []
        seen = clash = 0
        for item in items:
            entry = cached(item.herb) or resolve(item.herb)
            resolved.append(entry)
            if entry.pair_bits:
                # A 十八反/十九畏 pair needs a line whose partners are among the earlier lines' herbs (rules are symmetric).
                clash |= entry.partner_bits & seen
                seen |= entry.pair_bits
            one = entry.only
            if one is not None:
                for rule in one.rules:
                    rule(findings, rx, item, one)
            elif entry.species:
                findings.extend(self._strictest(rx, item, entry.species))
            else:
                findings.append(self._unknown(rx, item.herb))
        if clash:
            rx_rules.pairs(findings, rx, items, resolved, self.knowledge.pairs)
        rx_rules.duplicates(findings, rx, items, resolved)
        if req.patient.allergies:
            rx_rules.allergies(findings, rx, items, resolved, req.patient.allergies, self._resolve)
        rx_rules.prescription(findings, rx, req.days)
        # Most severe first; equal severities keep the prescription's order (sort is stable).
        if len(findings) > 1:
            findings.sort(key=_rank, reverse=True)
        verdict = _VERDICT[findings[0]["severity"]] if findings else Verdict.PASS
        # The one place findings become models: a single validation of the whole result.
        return _validate_result({"verdict": verdict, "findings": findings})

    def canonical(self, name: str) -> list[str]:
        """The canonical herbs a written name stands for: one, several for a generic name, none if unknown."""
        return [herb.name for herb in self._resolve(name).herbs]

    def herb_names(self) -> list[str]:
        return sorted(self.knowledge.herbs)

    @staticmethod
    def rule_codes() -> list[dict[str, str]]:
        return [{"code": code, "description": description} for code, description in RULE_CODES.items()]

    def _resolve(self, written: str) -> Resolved:
        found = self._resolved.get(written)
        if found is None:
            found = self._lookup(written)
            if len(self._resolved) < _CACHE_LIMIT:
                self._resolved[written] = found
        return found

    def _lookup(self, written: str) -> Resolved:
        """Everything a check needs to know about a spelling, worked out once for it."""
        norm = normalize_name(written)
        names = self._names.get(norm, ())
        herbs = tuple(self.knowledge.herbs[name] for name in names)
        keys = names or (norm,)
        pairs = self.knowledge.pairs
        return Resolved(
            norm=norm,
            herbs=herbs,
            keys=keys,
            species=tuple(herb_rules.species_for(written, norm, herb) for herb in herbs),
            allergy_keys=tuple(dict.fromkeys((norm, *keys))),
            pair_bits=self._bits(herb.name for herb in herbs),
            partner_bits=self._bits(other for herb in herbs for other in pairs.get(herb.name, ())),
        )

    def _bits(self, names: Iterable[str]) -> int:
        bits = 0
        for name in names:
            bits |= self._pair_bit.get(name, 0)
        return bits

    def _strictest(self, rx: Rx, item: RxItem, species: tuple[Species, ...]) -> list[FindingData]:
        """A generic name is checked as each species it may mean; per code, the most severe result stands."""
        found: list[FindingData] = []
        for one in species:
            for rule in one.rules:
                rule(found, rx, item, one)
        worst: dict[str, FindingData] = {}
        for finding in found:
            kept = worst.get(finding["code"])
            if kept is None or RANK[finding["severity"]] > RANK[kept["severity"]]:
                worst[finding["code"]] = finding
        return list(worst.values())

    def _unknown(self, rx: Rx, written: str) -> FindingData:
        return {
            "code": UNKNOWN_HERB,
            "severity": rx.severity(UNKNOWN_HERB),
            "herbs": [written],
            "message": f"{written}：知识库未收录该药名，无法审核剂量与禁忌，请按药典正名开具或人工审核",
            "source": self.knowledge.regulations.names_source,
        }


def _rank(finding: FindingData) -> int:
    return RANK[finding["severity"]]


@cache
def default_engine() -> RuleEngine:
    """The engine for the shipped knowledge file and default policy, built on first use."""
    return RuleEngine.load()
