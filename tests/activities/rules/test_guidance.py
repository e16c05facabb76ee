"""Medication guidance from the knowledge file: decoction methods, times and volumes, and the cautions a patient needs
(and only those: none for a man about pregnancy, none from pairs the data marks uncertain)."""

from __future__ import annotations

from activities.rules.engine import RuleEngine
from activities.rules.guidance import medication_guidance, times_per_day
from models.aftercare import CautionKind
from models.prescription import PatientFacts, PrescriptionDraft, RxItem
from tests.activities.rules.support import DATA

WOMAN = PatientFacts(age_years=35, sex="female")
MAN = PatientFacts(age_years=35, sex="male")
CHILD = PatientFacts(age_years=5, sex="male")


def draft(*items: RxItem, usage: str = "水煎服，每日一剂，早晚分服", **kwargs: object) -> PrescriptionDraft:
    return PrescriptionDraft(diagnosis="胃痞病", items=list(items), doses=7, usage=usage, **kwargs)  # type: ignore[arg-type]


def test_times_a_day_are_read_from_how_the_doctor_wrote_the_usage() -> None:
    assert times_per_day("水煎服，每日一剂，早晚饭后温服") == 2
    assert times_per_day("每日1剂，水煎400ml，分 2 次空腹温服") == 2
    assert times_per_day("水煎服，一日一剂，分三次服") == 3
    assert times_per_day("早中晚各一次") == 3
    assert times_per_day("水煎顿服") == 1
    assert times_per_day("遵医嘱") is None


def test_special_methods_come_from_the_doctor_or_else_the_pharmacopoeia_with_the_data_text(rules: RuleEngine) -> None:
    guide = medication_guidance(
        "rx-1",
        draft(
            RxItem(herb="附子", dose_g=9),
            RxItem(herb="砂仁", dose_g=6),
            RxItem(herb="阿胶", dose_g=9, decoction="烊化"),
        ),
        MAN,
        decocted_by_pharmacy=False,
        engine=rules,
    )
    methods = {step.method: step for step in guide.decoction}
    assert [step.method for step in guide.decoction] == ["先煎", "后下", "烊化"]  # in the order they are done
    assert methods["先煎"].herbs == ["附子"] and methods["后下"].herbs == ["砂仁"]  # ChP asks for them
    assert methods["烊化"].how == DATA["rules"]["decoction_methods"]["烊化"]
    assert guide.times_per_day == 2 and guide.volume_per_time == "200～300毫升"
    assert guide.days == 7 and not guide.decocted_by_pharmacy


def test_decocted_by_the_pharmacy_there_is_nothing_to_decoct_at_home(rules: RuleEngine) -> None:
    guide = medication_guidance("rx-1", draft(RxItem(herb="砂仁", dose_g=6)), MAN, True, rules)
    assert guide.decoction == [] and guide.preparation[0] == "药房已代煎并分袋包装，每袋为一次服用量。"


def test_a_child_gets_the_childs_volume_and_childrens_contraindications(rules: RuleEngine) -> None:
    guide = medication_guidance("rx-1", draft(RxItem(herb="甘草", dose_g=3), days=5), CHILD, False, rules)
    assert guide.volume_per_time == "50～150毫升" and guide.days == 5
    poppy = medication_guidance("rx-1", draft(RxItem(herb="罂粟壳", dose_g=3)), CHILD, False, rules)
    assert [c.herbs for c in poppy.cautions if c.kind is CautionKind.CHILD_FORBIDDEN] == [["罂粟壳"]]


def test_pregnancy_cautions_for_a_woman_only_and_toxicity_for_everyone(rules: RuleEngine) -> None:
    items = (RxItem(herb="红花", dose_g=6), RxItem(herb="全蝎", dose_g=3), RxItem(herb="党参", dose_g=15))
    woman = {c.kind: c for c in medication_guidance("rx-1", draft(*items), WOMAN, False, rules).cautions}
    assert woman[CautionKind.PREGNANCY_FORBIDDEN].herbs == ["全蝎"]
    assert woman[CautionKind.PREGNANCY_CAUTION].herbs == ["红花"]
    assert woman[CautionKind.TOXIC].herbs == ["全蝎"]
    man = {c.kind for c in medication_guidance("rx-1", draft(*items), MAN, False, rules).cautions}
    assert CautionKind.PREGNANCY_FORBIDDEN not in man and CautionKind.TOXIC in man


def test_eighteen_incompatibilities_name_the_partners_outside_the_prescription_only(rules: RuleEngine) -> None:
    guide = medication_guidance(
        "rx-1", draft(RxItem(herb="甘草", dose_g=6), RxItem(herb="海藻", dose_g=9)), MAN, False, rules
    )
    [licorice] = [c for c in guide.cautions if c.kind is CautionKind.INCOMPATIBLE and c.herbs == ["甘草"]]
    assert licorice.message.startswith("甘草与京大戟、红大戟、甘遂、芫花相反（十八反）")  # 海藻 is in it already
    # 党参's 十九畏 partner 五灵脂 is a recalled extension marked uncertain: not told to patients.
    codang = medication_guidance("rx-1", draft(RxItem(herb="党参", dose_g=15)), MAN, False, rules)
    assert [c.kind for c in codang.cautions] == [CautionKind.INCOMPATIBLE]
    assert "藜芦" in codang.cautions[0].message and "五灵脂" not in codang.cautions[0].message


def test_nineteen_restraints_are_told_as_such(rules: RuleEngine) -> None:
    guide = medication_guidance("rx-1", draft(RxItem(herb="丁香", dose_g=3)), MAN, False, rules)
    [clove] = [c for c in guide.cautions if c.kind is CautionKind.RESTRAINT]
    assert clove.herbs == ["丁香"] and clove.message.startswith("丁香与郁金相畏（十九畏）")
