"""Rules about one prescribed herb at a time: dose, pregnancy, toxicity, bans, children, decoction.

Each rule appends at most one finding per code. `rules_for` picks, when a name is first looked up, the rules that can
ever fire for the herb written that way, so a check does not test 甘草 for toxicity on every prescription.
"""

from __future__ import annotations

from functools import lru_cache

from activities.rules import codes
from activities.rules.config import RANK
from activities.rules.context import FindingData, HerbRule, Rx, Species, age_text, grams
from activities.rules.knowledge import Herb, Route
from activities.rules.names import GENERIC_NAMES
from models.prescription import RxItem

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


def dose_range(out: list[FindingData], rx: Rx, item: RxItem, species: Species) -> None:
    """The adult ChP range, and for a child the adult maximum scaled by the configured age fraction."""
    herb = species.herb
    dose, max_g, min_g = item.dose_g, herb.max_g, herb.min_g
    if max_g is not None and dose > max_g:
        out.append(
            {
                "code": codes.DOSE_ABOVE_MAX,
                "severity": rx.severity(codes.DOSE_ABOVE_MAX, herb.dose_uncertain),
                "herbs": [item.herb],
                "message": f"{species.label}{grams(dose)}，超过成人日用量上限{species.max_text}"
                f"（{species.span}）；确需超量须注明理由并在药品上方再次签名",
                "source": herb.dose_source,
            }
        )
    elif min_g is not None and dose < min_g and not rx.is_child:
        # Children are expected to get less than the adult range.
        out.append(
            {
                "code": codes.DOSE_BELOW_MIN,
                "severity": rx.severity(codes.DOSE_BELOW_MIN, herb.dose_uncertain),
                "herbs": [item.herb],
                "message": f"{species.label}{grams(dose)}，低于成人常用量下限{species.min_text}（{species.span}）",
                "source": herb.dose_source,
            }
        )
    fraction = rx.child_fraction
    if fraction is None or max_g is None or dose <= max_g * fraction + 1e-9:
        return
    out.append(
        {
            "code": codes.CHILD_DOSE,
            "severity": rx.severity(codes.CHILD_DOSE, uncertain=True),  # every pediatric table is unverified
            "herbs": [item.herb],
            "message": f"{rx.child_dose_intro}{species.label}宜不超过{_scaled(max_g, fraction)}"
            f"（成人上限{species.max_text}），现开{grams(dose)}",
            "source": rx.child_dose_source,
        }
    )


@lru_cache(maxsize=1024)
def _scaled(max_g: float, fraction: float) -> str:
    """A child's maximum as messages quote it; herbs and age fractions are few, so it is formatted once per pair."""
    return f"{max_g * fraction:.3g}g"


def pregnancy(out: list[FindingData], rx: Rx, item: RxItem, species: Species) -> None:
    if not rx.pregnant:
        return
    herb, name = species.herb, species.label
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
        {
            "code": code,
            "severity": rx.severity(key, herb.pregnancy_uncertain),
            "herbs": [item.herb],
            "message": message,
            "source": herb.pregnancy_source,
        }
    )


def toxic_28(out: list[FindingData], rx: Rx, item: RxItem, species: Species) -> None:
    """Only for the spellings the regulation controls; `rules_for` leaves it out for the others."""
    herb, regs = species.herb, rx.regs
    toxic = herb.toxic28
    assert toxic is not None
    keys = ["TOXIC_28:online" if rx.online else codes.TOXIC_28]
    message = (
        f"{species.label}属医疗用毒性药品（{toxic.regulation_name}）：{regs.toxic_dispensing}；{regs.toxic_validity}"
    )
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
        {
            "code": codes.TOXIC_28,
            "severity": severity,
            "herbs": [item.herb],
            "message": message,
            "source": regs.toxic_source,
        }
    )


def banned(out: list[FindingData], rx: Rx, item: RxItem, species: Species) -> None:
    out.append(
        {
            "code": codes.BANNED_SUBSTANCE,
            "severity": rx.severity(codes.BANNED_SUBSTANCE),
            "herbs": [item.herb],
            "message": f"{species.label}为禁止入药的药材，不得开具",
            "source": species.herb.banned_source,
        }
    )


def narcotic(out: list[FindingData], rx: Rx, item: RxItem, species: Species) -> None:
    name, regs = species.label, rx.regs
    if rx.online:
        out.append(
            {
                "code": codes.BANNED_ONLINE,
                "severity": rx.severity(codes.BANNED_ONLINE),
                "herbs": [item.herb],
                "message": f"{name}属麻醉药品，互联网诊疗不得开具",
                "source": regs.online_banned_source,
            }
        )
        return
    problems = []
    if rx.doses > regs.narcotic_max_days:
        problems.append(f"每张处方不得超过{regs.narcotic_max_days}日用量（现{rx.doses}日）")
    if regs.narcotic_no_single_herb and rx.items_count == 1:
        problems.append("不得单方发药")
    out.append(
        {
            "code": codes.NARCOTIC,
            "severity": rx.severity("NARCOTIC:over_limit" if problems else codes.NARCOTIC),
            "herbs": [item.herb],
            "message": "；".join([f"{name}属麻醉药品，须使用{regs.narcotic_paper}", *problems]),
            "source": regs.narcotic_source,
        }
    )


def child_forbidden(out: list[FindingData], rx: Rx, item: RxItem, species: Species) -> None:
    if rx.is_child:
        out.append(
            {
                "code": codes.CHILD_FORBIDDEN,
                "severity": rx.severity(codes.CHILD_FORBIDDEN),
                "herbs": [item.herb],
                "message": f"儿童禁用：{species.label}（患儿{age_text(rx.age)}）",
                "source": species.herb.child_forbidden_source or "",
            }
        )


def decoction(out: list[FindingData], rx: Rx, item: RxItem, species: Species) -> None:
    """`rules_for` leaves it out for the forms exempt from their herb's required method."""
    herb = species.herb
    given = methods_in(item.decoction)
    required = herb.decoction
    if required:
        if required in given:
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
        {
            "code": codes.DECOCTION_HINT,
            "severity": rx.severity(key),
            "herbs": [item.herb],
            "message": species.label + hint,
            "source": source,
        }
    )


def species_for(written: str, norm: str, herb: Herb) -> Species:
    """`herb` as a doctor wrote it (`written`, normalized to `norm`): its rules and what their findings quote."""
    return Species(
        herb=herb,
        label=_label(written, norm, herb),
        rules=rules_for(herb, norm),
        max_text=grams(herb.max_g) if herb.max_g is not None else "",
        min_text=grams(herb.min_g) if herb.min_g is not None else "",
        span=_span(herb),
    )


def _label(written: str, norm: str, herb: Herb) -> str:
    """The doctor's name, with the canonical one when they differ (黑顺片（附子）), so the message is unambiguous."""
    if norm == herb.name:
        return written
    if norm in GENERIC_NAMES:
        return f"{written}（可指{herb.name}）"
    return f"{written}（{herb.name}）"


def _span(herb: Herb) -> str:
    if herb.min_g is None or herb.max_g is None:
        return "药典未给完整范围"
    return f"{herb.min_g:g}～{herb.max_g:g}g"


def rules_for(herb: Herb, norm: str) -> tuple[HerbRule, ...]:
    """The rules that can fire for `herb` written as `norm`, in the order their findings are listed."""
    rules: list[HerbRule] = []
    if herb.banned:
        rules.append(banned)
    if herb.min_g is not None or herb.max_g is not None:
        rules.append(dose_range)
    if herb.pregnancy:
        rules.append(pregnancy)
    # Unless marked raw, a raw-only entry is dispensed processed (毒性药品管理办法 第九条) and is not controlled.
    if herb.toxic28 and (herb.toxic28.whole_herb or norm in herb.toxic28.raw_names):
        rules.append(toxic_28)
    if herb.narcotic:
        rules.append(narcotic)
    if herb.child_forbidden_source:
        rules.append(child_forbidden)
    exempt = bool(herb.decoction) and norm in _EXEMPT_FORMS.get(herb.name, ())
    if (herb.decoction or herb.decoction_textbook or herb.route) and not exempt:
        rules.append(decoction)
    return tuple(rules)
