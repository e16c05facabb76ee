"""Every rule, positive and negative, with cases drawn from the knowledge file."""

from __future__ import annotations

import re

import pytest

from activities.rules.codes import RULE_CODES
from activities.rules.engine import RuleEngine, default_engine
from models.prescription import Severity, Verdict

from .support import ADULT, DATA, HERBS, PREGNANT, found, line, only, rx

EDITION = "中国药典2020年版一部"
ORDER = list(Severity)


# ---- 十八反 -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("left", "right"), DATA["eighteen_incompatible"])
def test_every_eighteen_incompatible_pair_asks_for_a_second_signature(rules: RuleEngine, left: str, right: str):
    result = rules.check(rx(left, "茯苓", right))
    finding = only(result, "INCOMPATIBLE_18")
    assert finding.severity is Severity.SIGN_AGAIN
    assert finding.herbs == [left, right]
    assert EDITION in finding.source
    assert result.verdict in (Verdict.SIGN_AGAIN, Verdict.BLOCK)


def test_incompatibility_does_not_depend_on_order(rules: RuleEngine):
    assert only(rules.check(rx("白及", "附子")), "INCOMPATIBLE_18").herbs == ["白及", "附子"]


def test_bai_fuzi_is_not_fuzi(rules: RuleEngine):
    result = rules.check(rx(line("白附子", 3), line("半夏", 9), line("瓜蒌", 9)))
    assert found(result, "INCOMPATIBLE_18") == []
    assert rules.canonical("白附子") == ["白附子"]


def test_processed_fuzi_slices_are_fuzi(rules: RuleEngine):
    finding = only(rules.check(rx(line("黑顺片", 9, "先煎"), line("法半夏", 9))), "INCOMPATIBLE_18")
    assert finding.herbs == ["黑顺片", "法半夏"]
    assert "黑顺片（附子）" in finding.message


def test_raw_banxia_written_either_way_is_banxia(rules: RuleEngine):
    for written in ("生半夏", "半夏（生）", "半夏(生)"):
        assert found(rules.check(rx(written, line("附子", 9, "先煎"))), "INCOMPATIBLE_18"), written


def test_tu_beimu_is_not_a_beimu_and_only_hints_with_fuzi(rules: RuleEngine):
    assert "土贝母" not in rules.canonical("贝母")
    assert found(rules.check(rx("土贝母", "川乌")), "INCOMPATIBLE_18") == []
    finding = only(rules.check(rx("土贝母", line("附子", 9, "先煎"))), "INCOMPATIBLE_18")
    assert finding.severity is Severity.WARN  # uncertain in the data: a hint, not a second signature
    assert "未核" in finding.source


@pytest.mark.parametrize(
    ("generic", "partner"),
    [
        ("贝母", "川乌"),
        ("贝母", "附子"),
        ("乌头", "浙贝母"),
        ("贝母", "乌头"),
        ("沙参", "藜芦"),
        ("芍药", "藜芦"),
        ("大戟", "甘草"),
    ],
)
def test_generic_names_expand_to_every_species(rules: RuleEngine, generic: str, partner: str):
    finding = only(rules.check(rx(generic, partner)), "INCOMPATIBLE_18")
    assert finding.severity is Severity.SIGN_AGAIN
    assert finding.herbs == [generic, partner]


def test_generic_name_without_partner_is_clean(rules: RuleEngine):
    assert found(rules.check(rx("贝母", "桔梗", "甘草")), "INCOMPATIBLE_18") == []


@pytest.mark.parametrize("shen", ["太子参", "明党参"])
def test_extended_zhushen_pairs_are_uncertain_hints(rules: RuleEngine, shen: str):
    assert only(rules.check(rx(shen, "藜芦")), "INCOMPATIBLE_18").severity is Severity.WARN


# ---- 十九畏 -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("left", "right"), DATA["nineteen_restraints"])
def test_every_nineteen_restraint_pair_is_found(rules: RuleEngine, left: str, right: str):
    finding = only(rules.check(rx(left, right)), "RESTRAINT_19")
    assert finding.severity is Severity.SIGN_AGAIN
    assert finding.herbs == [left, right]


def test_restraint_source_says_whether_the_pharmacopoeia_backs_it(rules: RuleEngine):
    assert EDITION in only(rules.check(rx("肉桂", "赤石脂")), "RESTRAINT_19").source
    assert "药典未载" in only(rules.check(rx("官桂", "赤石脂")), "RESTRAINT_19").source


@pytest.mark.parametrize("pair", [entry["pair"] for entry in DATA["nineteen_restraints_uncertain"]])
def test_uncertain_restraints_are_warnings(rules: RuleEngine, pair: list[str]):
    assert only(rules.check(rx(*pair)), "RESTRAINT_19").severity is Severity.WARN


def test_restraint_needs_both_herbs(rules: RuleEngine):
    assert found(rules.check(rx("人参", "白术")), "RESTRAINT_19") == []


# ---- pregnancy ----------------------------------------------------------------------------------------------

UNCERTAIN_PREGNANCY = {entry["name"] for entry in DATA["pregnancy"]["uncertain"]}


@pytest.mark.parametrize("herb", sorted(set(DATA["pregnancy"]["forbidden"]) - UNCERTAIN_PREGNANCY))
def test_forbidden_in_pregnancy_blocks(rules: RuleEngine, herb: str):
    result = rules.check(rx(herb, patient=PREGNANT))
    assert only(result, "PREGNANCY_FORBIDDEN").severity is Severity.BLOCK
    assert result.verdict is Verdict.BLOCK


@pytest.mark.parametrize("herb", sorted(set(DATA["pregnancy"]["caution"]) - UNCERTAIN_PREGNANCY))
def test_caution_in_pregnancy_warns(rules: RuleEngine, herb: str):
    finding = only(rules.check(rx(herb, patient=PREGNANT)), "PREGNANCY_CAUTION")
    assert finding.severity is Severity.WARN
    assert EDITION in finding.source


@pytest.mark.parametrize("herb", DATA["pregnancy"]["caution_nonchp"])
def test_textbook_only_pregnancy_cautions_are_information(rules: RuleEngine, herb: str):
    assert only(rules.check(rx(herb, patient=PREGNANT)), "PREGNANCY_CAUTION").severity is Severity.INFO


@pytest.mark.parametrize("herb", ["红大戟", "天山雪莲"])
def test_recalled_pregnancy_bans_are_not_hard_blocks(rules: RuleEngine, herb: str):
    assert only(rules.check(rx(herb, patient=PREGNANT)), "PREGNANCY_FORBIDDEN").severity is Severity.WARN


def test_pregnancy_rules_need_a_pregnant_patient(rules: RuleEngine):
    female = {"age_years": 30, "sex": "female"}
    result = rules.check(rx("三棱", "桃仁", patient=female))
    assert found(result, "PREGNANCY_FORBIDDEN") == found(result, "PREGNANCY_CAUTION") == []


@pytest.mark.parametrize("herb", ["半夏", "细辛", "当归"])
def test_herbs_left_out_of_pregnancy_lists_on_purpose(rules: RuleEngine, herb: str):
    result = rules.check(rx(herb, patient=PREGNANT))
    assert found(result, "PREGNANCY_FORBIDDEN") == found(result, "PREGNANCY_CAUTION") == []


# ---- 28 toxic materials -------------------------------------------------------------------------------------

TOXIC_NAMES = [(entry["herb_record"], name) for entry in DATA["toxic_28_details"] for name in entry["match_names"]]


@pytest.mark.parametrize(("record", "written"), TOXIC_NAMES)
def test_every_listed_toxic_name_is_controlled(rules: RuleEngine, record: str, written: str):
    finding = only(rules.check(rx(line(written, 0.01), doses=1)), "TOXIC_28")
    assert finding.herbs == [written]
    assert "国务院令第23号" in finding.source
    assert rules.canonical(written) == [record]


@pytest.mark.parametrize("written", ["制川乌", "法半夏", "半夏", "附子", "黑顺片", "制天南星", "川乌"])
def test_processed_or_unmarked_forms_are_not_controlled(rules: RuleEngine, written: str):
    # 毒性药品管理办法 第九条: unless marked 生用, the processed form is dispensed.
    assert found(rules.check(rx(written)), "TOXIC_28") == []


def test_toxic_total_may_not_exceed_two_days_maximum(rules: RuleEngine):
    within = only(rules.check(rx(line("生半夏", 9), doses=2)), "TOXIC_28")
    assert within.severity is Severity.WARN
    over = only(rules.check(rx(line("生半夏", 9), doses=3)), "TOXIC_28")
    assert over.severity is Severity.BLOCK
    assert "27g" in over.message and "18g" in over.message
    assert only(rules.check(rx(line("雄黄", 0.05), doses=4)), "TOXIC_28").severity is Severity.WARN
    assert only(rules.check(rx(line("雄黄", 0.05), doses=5)), "TOXIC_28").severity is Severity.BLOCK


def test_toxic_without_internal_dose_needs_a_signature(rules: RuleEngine):
    assert only(rules.check(rx(line("生川乌", 1), doses=1)), "TOXIC_28").severity is Severity.SIGN_AGAIN


# ---- doses --------------------------------------------------------------------------------------------------


def _formula_lines(formula: dict) -> list:
    # Lines counted in pieces (大枣 3枚) have no grams; the ChP minimum keeps them inside the range.
    return [line(entry["herb"], entry.get("dose_g"), entry.get("decoction")) for entry in formula["herbs"]]


def _flag(text: str) -> tuple[str, str]:
    parsed = re.fullmatch(r"(\S+) [\d.]+g ([<>]) ChP.*", text)
    assert parsed, text
    return parsed[1], "DOSE_ABOVE_MAX" if parsed[2] == ">" else "DOSE_BELOW_MIN"


@pytest.mark.parametrize("formula", DATA["classic_formulas"], ids=lambda formula: formula["name"])
def test_classic_formula_dose_flags_match_the_data(rules: RuleEngine, formula: dict):
    result = rules.check(rx(*_formula_lines(formula)))
    flagged = {
        (finding.herbs[0], finding.code)
        for finding in result.findings
        if finding.code in ("DOSE_ABOVE_MAX", "DOSE_BELOW_MIN")
    }
    assert flagged == {_flag(text) for text in formula["chp_range_flags"]}


def test_gui_zhi_tang_passes_clean(rules: RuleEngine):
    formula = next(formula for formula in DATA["classic_formulas"] if formula["name"] == "桂枝汤")
    result = rules.check(rx(*_formula_lines(formula)))
    assert result.verdict is Verdict.PASS
    assert result.findings == []


def test_dose_severities_and_boundaries(rules: RuleEngine):
    above = only(rules.check(rx(line("柴胡", 24))), "DOSE_ABOVE_MAX")
    assert above.severity is Severity.SIGN_AGAIN
    assert above.source.startswith(f"{EDITION}【柴胡】")
    assert only(rules.check(rx(line("茯苓", 9))), "DOSE_BELOW_MIN").severity is Severity.INFO
    at_edges = rules.check(rx(line("细辛", 3), line("黄芪", 9), line("石膏", 60, "先煎")))
    assert at_edges.findings == []


def test_textbook_doses_are_uncertain(rules: RuleEngine):
    # 龙骨 has no ChP monograph; its range is a textbook's.
    finding = only(rules.check(rx(line("龙骨", 60, "先煎"))), "DOSE_ABOVE_MAX")
    assert finding.severity is Severity.WARN
    assert "教材" in finding.source


# ---- online bans, banned substances, narcotics --------------------------------------------------------------


@pytest.mark.parametrize("written", ["罂粟壳", "米壳", "御米壳"])
def test_poppy_husk_is_banned_online(rules: RuleEngine, written: str):
    result = rules.check(rx(written, "甘草"))
    assert only(result, "BANNED_ONLINE").severity is Severity.BLOCK
    assert result.verdict is Verdict.BLOCK


def test_poppy_husk_offline_follows_the_narcotic_rules(rules: RuleEngine):
    allowed = rules.check(rx(line("罂粟壳", 3), "甘草", online=False, doses=3))
    assert found(allowed, "BANNED_ONLINE") == []
    assert only(allowed, "NARCOTIC").severity is Severity.WARN
    too_long = only(rules.check(rx(line("罂粟壳", 3), "甘草", online=False, doses=4)), "NARCOTIC")
    assert too_long.severity is Severity.BLOCK
    single = only(rules.check(rx(line("罂粟壳", 3), online=False, doses=1)), "NARCOTIC")
    assert single.severity is Severity.BLOCK and "单方" in single.message


@pytest.mark.parametrize("written", ["犀角", "犀牛角", "关木通"])
def test_banned_substances_block(rules: RuleEngine, written: str):
    assert only(rules.check(rx(line(written, 3))), "BANNED_SUBSTANCE").severity is Severity.BLOCK


def test_buffalo_horn_is_not_rhinoceros_horn(rules: RuleEngine):
    assert rules.check(rx(line("水牛角", 30, "先煎"))).findings == []


# ---- allergies, duplicates, unknown names -------------------------------------------------------------------


def test_allergy_matches_any_name_of_the_herb(rules: RuleEngine):
    patient = {**ADULT, "allergies": ["甘草", "青霉素"]}
    finding = only(rules.check(rx("粉甘草", "茯苓", patient=patient)), "ALLERGY")
    assert finding.severity is Severity.BLOCK
    assert finding.herbs == ["粉甘草"]


def test_generic_allergy_covers_every_species(rules: RuleEngine):
    patient = {**ADULT, "allergies": ["贝母"]}
    assert only(rules.check(rx("浙贝母", patient=patient)), "ALLERGY").herbs == ["浙贝母"]


def test_allergy_does_not_match_by_substring(rules: RuleEngine):
    patient = {**ADULT, "allergies": ["白附子", "青霉素"]}
    assert found(rules.check(rx(line("附子", 9, "先煎"), patient=patient)), "ALLERGY") == []


def test_unknown_allergens_match_verbatim(rules: RuleEngine):
    patient = {**ADULT, "allergies": ["焦山楂"]}
    assert only(rules.check(rx("焦山楂", patient=patient)), "ALLERGY").herbs == ["焦山楂"]


def test_duplicates_after_normalization(rules: RuleEngine):
    finding = only(rules.check(rx("甘草", "茯苓", "生甘草")), "DUPLICATE_HERB")
    assert finding.herbs == ["甘草", "生甘草"] and finding.severity is Severity.WARN
    assert "可能" in only(rules.check(rx("芍药", "白芍")), "DUPLICATE_HERB").message
    assert found(rules.check(rx("甘草", "炙甘草")), "DUPLICATE_HERB") == []  # two ChP monographs
    assert found(rules.check(rx("白附子", line("附子", 9, "先煎"))), "DUPLICATE_HERB") == []


def test_unknown_names_are_flagged_not_guessed(rules: RuleEngine):
    result = rules.check(rx("焦山楂", "大附子", "甘草"))
    assert [finding.herbs for finding in found(result, "UNKNOWN_HERB")] == [["焦山楂"], ["大附子"]]
    assert result.verdict is Verdict.WARN
    assert rules.canonical("大附子") == []


# ---- children -----------------------------------------------------------------------------------------------

CHILD_4 = {"age_years": 4, "sex": "female"}


def test_child_dose_uses_the_age_fraction(rules: RuleEngine):
    # 《中医儿科学》 default: 1–7 years get 2/3 of the adult maximum; 甘草 2–10g → 6.67g.
    finding = only(rules.check(rx(line("甘草", 9), patient=CHILD_4)), "CHILD_DOSE")
    assert finding.severity is Severity.WARN
    assert "2/3" in finding.message
    assert found(rules.check(rx(line("甘草", 6), patient=CHILD_4)), "CHILD_DOSE") == []
    newborn = {"age_years": 0.05, "sex": "male"}
    assert found(rules.check(rx(line("甘草", 2), patient=newborn)), "CHILD_DOSE")  # 1/6 of 10g


def test_school_age_children_get_adult_doses_by_default(rules: RuleEngine):
    assert found(rules.check(rx(line("甘草", 9), patient={"age_years": 9, "sex": "male"})), "CHILD_DOSE") == []


def test_children_are_not_told_their_dose_is_below_the_adult_range(rules: RuleEngine):
    assert found(rules.check(rx(line("茯苓", 5), patient=CHILD_4)), "DOSE_BELOW_MIN") == []


def test_poppy_husk_is_forbidden_for_children(rules: RuleEngine):
    result = rules.check(rx(line("罂粟壳", 3), "甘草", online=False, doses=2, patient={"age_years": 12, "sex": "male"}))
    assert only(result, "CHILD_FORBIDDEN").severity is Severity.BLOCK


def test_online_children_under_six_need_a_guardian_and_physician(rules: RuleEngine):
    assert only(rules.check(rx("甘草", patient=CHILD_4)), "CHILD_ONLINE").severity is Severity.WARN
    assert found(rules.check(rx("甘草", patient=CHILD_4, online=False)), "CHILD_ONLINE") == []
    assert found(rules.check(rx("甘草", patient={"age_years": 6, "sex": "male"})), "CHILD_ONLINE") == []


# ---- quantity and validity ----------------------------------------------------------------------------------


def test_more_than_seven_days_needs_a_reason(rules: RuleEngine):
    assert found(rules.check(rx("甘草", doses=7)), "QUANTITY_OVER_LIMIT") == []
    finding = only(rules.check(rx("甘草", doses=8)), "QUANTITY_OVER_LIMIT")
    assert finding.severity is Severity.SIGN_AGAIN and finding.herbs == []


def test_validity_may_not_exceed_three_days(rules: RuleEngine):
    assert found(rules.check(rx("甘草", days=3)), "VALIDITY_OVER_LIMIT") == []
    assert only(rules.check(rx("甘草", days=4)), "VALIDITY_OVER_LIMIT").severity is Severity.BLOCK


# ---- decoction ----------------------------------------------------------------------------------------------

REQUIRED_METHODS = [(name, herb["decoction"]) for name, herb in HERBS.items() if herb["decoction"] and name != "大黄"]


@pytest.mark.parametrize(("herb", "method"), REQUIRED_METHODS)
def test_required_decoction_method(rules: RuleEngine, herb: str, method: str):
    missing = only(rules.check(rx(herb)), "DECOCTION_HINT")
    assert missing.severity is Severity.WARN and method in missing.message
    assert found(rules.check(rx(line(herb, None, method))), "DECOCTION_HINT") == []


def test_wrong_decoction_method_is_named(rules: RuleEngine):
    finding = only(rules.check(rx(line("石膏", 30, "后下"))), "DECOCTION_HINT")
    assert "先煎" in finding.message and "后下" in finding.message


def test_decoction_method_synonyms(rules: RuleEngine):
    assert found(rules.check(rx(line("人参", 9, "另炖"))), "DECOCTION_HINT") == []
    assert found(rules.check(rx(line("附子", 9, "先煎久煎"))), "DECOCTION_HINT") == []


def test_conditional_and_exempt_decoction_methods(rules: RuleEngine):
    assert only(rules.check(rx(line("大黄", 9))), "DECOCTION_HINT").severity is Severity.INFO
    assert found(rules.check(rx(line("酒大黄", 9))), "DECOCTION_HINT") == []
    assert found(rules.check(rx(line("炒苦杏仁", 9))), "DECOCTION_HINT") == []
    assert only(rules.check(rx(line("苦杏仁", 9))), "DECOCTION_HINT").severity is Severity.WARN


def test_herbs_not_for_decoction(rules: RuleEngine):
    assert only(rules.check(rx(line("朱砂", 0.3))), "DECOCTION_HINT").severity is Severity.WARN
    assert found(rules.check(rx(line("朱砂", 0.3, "冲服"))), "DECOCTION_HINT") == []
    assert "炮制" in only(rules.check(rx(line("川乌", 1))), "DECOCTION_HINT").message


# ---- verdict, ordering, sources -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_args", "verdict"),
    [
        ((line("茯苓", 9),), Verdict.PASS),  # info only
        ((line("人参", 9),), Verdict.WARN),  # 另煎 missing
        ((line("柴胡", 24),), Verdict.SIGN_AGAIN),
        ((line("犀角", 3),), Verdict.BLOCK),
    ],
)
def test_verdict_is_the_most_severe_finding(rules: RuleEngine, request_args: tuple, verdict: Verdict):
    assert rules.check(rx(*request_args)).verdict is verdict


def test_findings_are_ordered_most_severe_first(rules: RuleEngine):
    result = rules.check(rx(line("茯苓", 9), line("人参", 9), line("柴胡", 24), line("三棱", 9), patient=PREGNANT))
    severities = [finding.severity for finding in result.findings]
    assert severities == sorted(severities, key=ORDER.index, reverse=True)
    assert {finding.severity for finding in result.findings} == set(Severity)
    assert result.verdict is Verdict.BLOCK


def test_every_rule_code_can_fire_and_every_finding_is_sourced(rules: RuleEngine):
    requests = [
        rx(
            "附子",
            "半夏",
            "人参",
            "五灵脂",
            "三棱",
            line("柴胡", 24),
            line("茯苓", 9),
            "生半夏",
            "犀角",
            "焦山楂",
            "甘草",
            "生甘草",
            "罂粟壳",
            line("朱砂", 0.3),
            patient={**PREGNANT, "allergies": ["茯苓"]},
            doses=8,
            days=4,
        ),
        rx("罂粟壳", "茯苓", online=False, patient={"age_years": 4, "sex": "male"}),
        rx(line("甘草", 9), patient={"age_years": 4, "sex": "male"}),
        rx("桃仁", patient=PREGNANT),
    ]
    findings = [finding for req in requests for finding in rules.check(req).findings]
    assert {finding.code for finding in findings} == set(RULE_CODES)
    assert all(finding.message and finding.source for finding in findings)


def test_rule_codes_are_listed_with_descriptions(rules: RuleEngine):
    listed = rules.rule_codes()
    assert [entry["code"] for entry in listed] == list(RULE_CODES)
    assert all(entry["description"] for entry in listed)


def test_default_engine_is_built_once():
    assert default_engine() is default_engine()
