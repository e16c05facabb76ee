"""The offline prescription pre-review: one `RuleEngine` per process, built once, then pure lookups per check.

The engine only flags. A doctor signs (again, where a finding asks for it) and a pharmacist approves; the
internet-diagnosis rules forbid generating prescriptions automatically.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from activities.rules import herb_rules, rx_rules
from activities.rules.codes import RULE_CODES, UNKNOWN_HERB
from activities.rules.config import RANK, EngineConfig
from activities.rules.context import HerbRule, Policy, Resolved, Rx
from activities.rules.knowledge import Herb, Knowledge, load_knowledge
from activities.rules.names import normalize_name
from models.prescription import CheckRequest, CheckResult, Finding, RxItem, Severity, Verdict

_VERDICT = {
    Severity.INFO: Verdict.PASS,
    Severity.WARN: Verdict.WARN,
    Severity.SIGN_AGAIN: Verdict.SIGN_AGAIN,
    Severity.BLOCK: Verdict.BLOCK,
}

# Written names are remembered after the first lookup; past this many, new spellings are looked up each time
# instead, so that arbitrary input cannot grow the cache without bound.
_CACHE_LIMIT = 50_000


class RuleEngine:
    def __init__(self, knowledge: Knowledge, config: EngineConfig | None = None) -> None:
        self.knowledge = knowledge
        self.config = config or EngineConfig()
        self._policy = Policy(self.config)
        self._rules = {name: herb_rules.rules_for(herb) for name, herb in knowledge.herbs.items()}
        self._resolved: dict[str, Resolved] = {}
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
        cached = self._resolved.get
        resolved = [cached(item.herb) or self._resolve(item.herb) for item in items]
        findings: list[Finding] = []
        for item, (norm, _, _, checks) in zip(items, resolved, strict=True):
            if not checks:
                findings.append(self._unknown(rx, item.herb))
            elif len(checks) == 1:
                herb, rules = checks[0]
                for rule in rules:
                    rule(findings, rx, item, norm, herb)
            else:
                findings.extend(self._strictest(rx, item, norm, checks))
        rx_rules.pairs(findings, rx, items, resolved, self.knowledge.pairs)
        rx_rules.duplicates(findings, rx, items, resolved)
        if req.patient.allergies:
            rx_rules.allergies(findings, rx, items, resolved, req.patient.allergies, self._resolve)
        rx_rules.prescription(findings, rx, req.days)
        # Most severe first; equal severities keep the prescription's order (sort is stable).
        findings.sort(key=lambda finding: RANK[finding.severity], reverse=True)
        verdict = _VERDICT[findings[0].severity] if findings else Verdict.PASS
        return CheckResult(verdict=verdict, findings=findings)

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
        norm = normalize_name(written)
        names = self._names.get(norm, ())
        herbs = tuple(self.knowledge.herbs[name] for name in names)
        return Resolved(norm, herbs, names or (norm,), tuple((herb, self._rules[herb.name]) for herb in herbs))

    def _strictest(
        self, rx: Rx, item: RxItem, norm: str, checks: tuple[tuple[Herb, tuple[HerbRule, ...]], ...]
    ) -> list[Finding]:
        """A generic name is checked as each species it may mean; per code, the most severe result stands."""
        found: list[Finding] = []
        for herb, rules in checks:
            for rule in rules:
                rule(found, rx, item, norm, herb)
        worst: dict[str, Finding] = {}
        for finding in found:
            kept = worst.get(finding.code)
            if kept is None or RANK[finding.severity] > RANK[kept.severity]:
                worst[finding.code] = finding
        return list(worst.values())

    def _unknown(self, rx: Rx, written: str) -> Finding:
        return Finding(
            code=UNKNOWN_HERB,
            severity=rx.severity(UNKNOWN_HERB),
            herbs=[written],
            message=f"{written}：知识库未收录该药名，无法审核剂量与禁忌，请按药典正名开具或人工审核",
            source=self.knowledge.regulations.names_source,
        )


@cache
def default_engine() -> RuleEngine:
    """The engine for the shipped knowledge file and default policy, built on first use."""
    return RuleEngine.load()
