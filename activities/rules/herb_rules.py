"""Rules about one prescribed herb at a time: dose, pregnancy, toxicity, bans, children, decoction.

Each rule appends at most one finding per code. `rules_for` picks, at load, the rules that can ever fire for a herb,
so a check does not test 甘草 for toxicity on every prescription.
"""

from __future__ import annotations

from functools import lru_cache

from activities.rules import codes
from activities.rules.config import RANK
from activities.rules.context import HerbRule, Rx, age_text, grams, label
from activities.rules.knowledge import Herb, Route
from models.prescription import Finding, RxItem

# How doctors write each special method; the values are the methods of 医疗机构中药煎药室管理规范.
_METHOD_WORDS: dict[str, tuple[str, ...]] = {
    "先煎": ("先煎", "先下"),
    "后下": ("后下", "后入"),
    "包煎": ("包煎", "布包"),
    "另煎": ("另煎", "另炖", "单煎"),
    "烊化": ("烊化", "烊冲"),
    "冲服": ("冲服", "溶入", "溶化", "溶服", "吞服"),
}

# ChP ties two methods to a use or a form. 大黄 "用于泻下不宜久煎": the engine cannot see the purpose, so the
# hint is softer, and its processed forms (酒大黄, 熟大黄, 大黄炭) are not used to purge. 苦杏仁 "生品入煎剂后下":
# the stir-fried and blanched forms are exempt.
_CONDITIONAL_METHOD = {"大黄": "用于泻下时"}
_EXEMPT_FORMS = {
    "大黄": frozenset({"酒大黄", "熟大黄", "大黄炭"}),
    "苦杏仁": frozenset({"炒苦杏仁", "燀苦杏仁"}),
}


@lru_cache(maxsize=512)
def methods_in(decoction: str | None) -> frozenset[str]:
    if not decoction:
        return frozenset()
    return frozenset(method for method, words in _METHOD_WORDS.items() if any(word in decoction for word in words))


def dose_range(out: list[Finding], rx: Rx, item: RxItem, norm: str, herb: Herb) -> None:
    """The adult ChP range, and for a child the adult maximum scaled by the configured age fraction."""
    dose, max_g, min_g = item.dose_g, herb.max_g, herb.min_g
    if max_g is not None and dose > max_g:
        out.append(
            Finding(
                code=codes.DOSE_ABOVE_MAX,
                severity=rx.severity(codes.DOSE_ABOVE_MAX, herb.dose_uncertain),
                herbs=[item.herb],
                message=f"{label(item.herb, norm, herb)}{grams(dose)}，超过成人日用量上限{grams(max_g)}"
                f"（{_span(herb)}）；确需超量须注明理由并在药品上方再次签名",
                source=herb.dose_source,
            )
        )
    elif min_g is not None and dose < min_g and not rx.is_child:
        # Children are expected to get less than the adult range.
        out.append(
            Finding(
                code=codes.DOSE_BELOW_MIN,
                severity=rx.severity(codes.DOSE_BELOW_MIN, herb.dose_uncertain),
                herbs=[item.herb],
                message=f"{label(item.herb, norm, herb)}{grams(dose)}，"
                f"低于成人常用量下限{grams(min_g)}（{_span(herb)}）",
                source=herb.dose_source,
            )
        )
    fraction, policy = rx.child_fraction, rx.child_policy
    if fraction is None or policy is None or max_g is None or dose <= max_g * fraction + 1e-9:
        return
    out.append(
        Finding(
            code=codes.CHILD_DOSE,
            severity=rx.severity(codes.CHILD_DOSE, uncertain=True),  # every pediatric table is unverified
            herbs=[item.herb],
            message=f"患儿{age_text(rx.age)}，按{policy.name}约为成人量的{rx.child_fraction_text}，"
            f"{label(item.herb, norm, herb)}宜不超过{max_g * fraction:.3g}g（成人上限{grams(max_g)}），"
            f"现开{grams(dose)}",
            source=policy.source,
        )
    )


def _span(herb: Herb) -> str:
    if herb.min_g is None or herb.max_g is None:
        return "药典未给完整范围"
    return f"{herb.min_g:g}～{herb.max_g:g}g"


def pregnancy(out: list[Finding], rx: Rx, item: RxItem, norm: str, herb: Herb) -> None:
    if not rx.pregnant:
        return
    name = label(item.herb, norm, herb)
    if herb.pregnancy == "forbidden":
        code, key, message = codes.PREGNANCY_FORBIDDEN, codes.PREGNANCY_FORBIDDEN, f"孕妇禁用：{name}"
    elif herb.pregnancy == "caution":
        code, key, message = codes.PREGNANCY_CAUTION, codes.PREGNANCY_CAUTION, f"孕妇慎用：{name}"
    else:
        code, key = codes.PREGNANCY_CAUTION, "PREGNANCY_CAUTION:nonchp"
        message = f"孕妇慎用（教材或审方规则库扩展，非药典）：{name}"
    if herb.pregnancy_uncertain and herb.pregnancy != "caution_nonchp":
        message += "（未核药典原文）"
    out.append(
        Finding(
            code=code,
            severity=rx.severity(key, herb.pregnancy_uncertain),
            herbs=[item.herb],
            message=message,
            source=herb.pregnancy_source,
        )
    )


def toxic_28(out: list[Finding], rx: Rx, item: RxItem, norm: str, herb: Herb) -> None:
    toxic = herb.toxic28
    assert toxic is not None
    # Unless marked raw, a raw-only entry is dispensed processed (毒性药品管理办法 第九条) and is not controlled.
    if not (toxic.whole_herb or norm in toxic.raw_names):
        return
    name = label(item.herb, norm, herb)
    regs = rx.regs
    keys = ["TOXIC_28:online" if rx.online else codes.TOXIC_28]
    message = f"{name}属医疗用毒性药品（{toxic.regulation_name}）：{regs.toxic_dispensing}；{regs.toxic_validity}"
    if herb.max_g is None:
        keys.append("TOXIC_28:no_dose")
        message += "。药典未载内服剂量，无法核对“每次处方剂量不得超过二日极量”，须医师再次签名确认"
    else:
        total, limit = item.dose_g * rx.doses, 2 * herb.max_g
        # ChP gives usual daily ranges, not 极量; the upper bound is the only sourced stand-in.
        if total > limit + 1e-9:
            keys.append("TOXIC_28:over_limit")
            message += (
                f"。每剂{grams(item.dose_g)}×{rx.doses}剂共{grams(total)}，超过二日极量{grams(limit)}"
                f"（以药典日用量上限{grams(herb.max_g)}计）"
            )
    severity = max((rx.severity(key) for key in keys), key=RANK.__getitem__)
    out.append(
        Finding(code=codes.TOXIC_28, severity=severity, herbs=[item.herb], message=message, source=regs.toxic_source)
    )


def banned(out: list[Finding], rx: Rx, item: RxItem, norm: str, herb: Herb) -> None:
    out.append(
        Finding(
            code=codes.BANNED_SUBSTANCE,
            severity=rx.severity(codes.BANNED_SUBSTANCE),
            herbs=[item.herb],
            message=f"{label(item.herb, norm, herb)}为禁止入药的药材，不得开具",
            source=herb.banned_source,
        )
    )


def narcotic(out: list[Finding], rx: Rx, item: RxItem, norm: str, herb: Herb) -> None:
    name, regs = label(item.herb, norm, herb), rx.regs
    if rx.online:
        out.append(
            Finding(
                code=codes.BANNED_ONLINE,
                severity=rx.severity(codes.BANNED_ONLINE),
                herbs=[item.herb],
                message=f"{name}属麻醉药品，互联网诊疗不得开具",
                source=regs.online_banned_source,
            )
        )
        return
    problems = []
    if rx.doses > regs.narcotic_max_days:
        problems.append(f"每张处方不得超过{regs.narcotic_max_days}日用量（现{rx.doses}日）")
    if regs.narcotic_no_single_herb and rx.items_count == 1:
        problems.append("不得单方发药")
    out.append(
        Finding(
            code=codes.NARCOTIC,
            severity=rx.severity("NARCOTIC:over_limit" if problems else codes.NARCOTIC),
            herbs=[item.herb],
            message="；".join([f"{name}属麻醉药品，须使用{regs.narcotic_paper}", *problems]),
            source=regs.narcotic_source,
        )
    )


def child_forbidden(out: list[Finding], rx: Rx, item: RxItem, norm: str, herb: Herb) -> None:
    if rx.is_child:
        out.append(
            Finding(
                code=codes.CHILD_FORBIDDEN,
                severity=rx.severity(codes.CHILD_FORBIDDEN),
                herbs=[item.herb],
                message=f"儿童禁用：{label(item.herb, norm, herb)}（患儿{age_text(rx.age)}）",
                source=herb.child_forbidden_source or "",
            )
        )


def decoction(out: list[Finding], rx: Rx, item: RxItem, norm: str, herb: Herb) -> None:
    given = methods_in(item.decoction)
    required = herb.decoction
    if required:
        if required in given or norm in _EXEMPT_FORMS.get(herb.name, ()):
            return
        condition = _CONDITIONAL_METHOD.get(herb.name)
        key = "DECOCTION_HINT:conditional" if condition else codes.DECOCTION_HINT
        why = herb.decoction_note or f"药典：{required}"
        stated = f"处方注明为“{item.decoction}”" if item.decoction else "处方未注明"
        hint, source = f"{condition or ''}应{required}（{why}），{stated}", herb.dose_source
    elif herb.route is Route.NOT_DECOCTED:
        if "冲服" in given:
            return
        key, source = "DECOCTION_HINT:not_decocted", herb.dose_source
        hint = "多入丸散、不宜入煎剂；如随汤剂服用请注明冲服"
    elif herb.route is Route.PROCESSED_ONLY:
        key, source = "DECOCTION_HINT:processed_only", herb.dose_source
        hint = "药典规定生品外用或一般炮制后用，内服请开具炮制品"
    elif herb.decoction_textbook and herb.decoction_textbook not in given:
        key, source = "DECOCTION_HINT:textbook", rx.regs.decoction_source
        hint = f"教材建议{herb.decoction_textbook}（非药典要求）"
    else:
        return
    out.append(
        Finding(
            code=codes.DECOCTION_HINT,
            severity=rx.severity(key),
            herbs=[item.herb],
            message=label(item.herb, norm, herb) + hint,
            source=source,
        )
    )


def rules_for(herb: Herb) -> tuple[HerbRule, ...]:
    rules: list[HerbRule] = []
    if herb.banned:
        rules.append(banned)
    if herb.min_g is not None or herb.max_g is not None:
        rules.append(dose_range)
    if herb.pregnancy:
        rules.append(pregnancy)
    if herb.toxic28:
        rules.append(toxic_28)
    if herb.narcotic:
        rules.append(narcotic)
    if herb.child_forbidden_source:
        rules.append(child_forbidden)
    if herb.decoction or herb.decoction_textbook or herb.route:
        rules.append(decoction)
    return tuple(rules)
