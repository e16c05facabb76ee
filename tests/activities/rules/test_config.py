"""Policy: severities, uncertain data and the children's dose table are configurable."""

from __future__ import annotations

import pytest

from activities.rules.config import CHILD_DOSE_ZHONGYAOXUE, EngineConfig
from activities.rules.engine import RuleEngine
from models.prescription import Severity, Verdict

from .support import PREGNANT, found, line, only, rx


def engine(**config) -> RuleEngine:
    return RuleEngine.load(config=EngineConfig(**config))


def test_uncertain_entries_follow_the_cap():
    strict = engine(uncertain_max_severity=Severity.BLOCK)
    assert only(strict.check(rx("土贝母", line("附子", 9, "先煎"))), "INCOMPATIBLE_18").severity is Severity.SIGN_AGAIN
    assert only(strict.check(rx("红大戟", patient=PREGNANT)), "PREGNANCY_FORBIDDEN").severity is Severity.BLOCK
    lenient = engine(uncertain_max_severity=Severity.INFO)
    result = lenient.check(rx("党参", "五灵脂"))
    assert only(result, "RESTRAINT_19").severity is Severity.INFO
    assert result.verdict is Verdict.PASS


def test_the_cap_never_raises_a_certain_rule():
    relaxed = engine(uncertain_max_severity=Severity.INFO)
    assert only(relaxed.check(rx("附子", "半夏")), "INCOMPATIBLE_18").severity is Severity.SIGN_AGAIN


def test_severity_overrides():
    local = engine(severities={"RESTRAINT_19": Severity.WARN, "TOXIC_28:online": Severity.BLOCK})
    assert only(local.check(rx("肉桂", "赤石脂")), "RESTRAINT_19").severity is Severity.WARN
    assert only(local.check(rx(line("雄黄", 0.05), doses=1)), "TOXIC_28").severity is Severity.BLOCK
    offline = local.check(rx(line("雄黄", 0.05), doses=1, online=False))
    assert only(offline, "TOXIC_28").severity is Severity.WARN


def test_unknown_severity_keys_are_rejected():
    with pytest.raises(ValueError, match="RESTRAINT_91"):
        EngineConfig(severities={"RESTRAINT_91": Severity.WARN})


def test_uncertain_aliases_can_be_switched_off():
    assert engine().canonical("桂心") == ["肉桂"]
    assert engine(resolve_uncertain_aliases=False).canonical("桂心") == []


def test_child_dose_policy_is_replaceable():
    nine = {"age_years": 9, "sex": "male"}
    textbook = engine(child_dose=CHILD_DOSE_ZHONGYAOXUE)  # 1/2 from 5 years on: 甘草 at most 5g
    assert "1/2" in only(textbook.check(rx(line("甘草", 6), patient=nine)), "CHILD_DOSE").message
    no_table = engine(child_dose=None)
    assert found(no_table.check(rx(line("甘草", 9), patient={"age_years": 3, "sex": "male"})), "CHILD_DOSE") == []
