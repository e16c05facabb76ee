"""Rules about the prescription as a whole: pairs of herbs, repeats, allergies, quantity, validity."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from activities.rules import codes
from activities.rules.config import RANK
from activities.rules.context import FindingData, Resolved, Rx, Species, age_text
from activities.rules.knowledge import PairRule
from models.prescription import RxItem


def pairs(
    out: list[FindingData],
    rx: Rx,
    items: Sequence[RxItem],
    resolved: Sequence[Resolved],
    pair_rules: dict[str, dict[str, tuple[PairRule, ...]]],
) -> None:
    """十八反 and 十九畏. A generic name pairs through every species it may mean; the worst pair is reported."""
    # A rule is stored under both of its herbs, so both lines of a pair have partners: the others cannot take part.
    paired = [(i, entry) for i, entry in enumerate(resolved) if entry.partner_bits]
    present = 0
    for _, entry in paired:
        present |= entry.pair_bits
    worst: dict[tuple[int, int, str], FindingData] = {}
    for n, (i, entry) in enumerate(paired):
        # Most herbs pair with nothing in a given prescription; the bit test keeps that case cheap.
        if not entry.partner_bits & present:
            continue
        for species in entry.species:
            partners = pair_rules.get(species.herb.name)
            if partners is None:
                continue
            for j, later in paired[n + 1 :]:  # each unordered pair once: rules are stored under both names
                for other in later.species:
                    for rule in partners.get(other.herb.name, ()):
                        finding = _pair_finding(rx, rule, items[i], species, items[j], other)
                        key = (i, j, rule.code)
                        kept = worst.get(key)
                        if kept is None or RANK[finding["severity"]] > RANK[kept["severity"]]:
                            worst[key] = finding
    out.extend(worst.values())


def _pair_finding(rx: Rx, rule: PairRule, a: RxItem, a_species: Species, b: RxItem, b_species: Species) -> FindingData:
    names = f"{a_species.label}与{b_species.label}"
    if rule.uncertain:
        message = f"{names}可能属{rule.label}（药典未列，传统说法有争议），请审方确认"
    else:
        message = f"{names}属{rule.label}配伍禁忌；确需同用须医师在药品上方再次签名"
    return {
        "code": rule.code,
        "severity": rx.severity(rule.code, rule.uncertain),
        "herbs": [a.herb, b.herb],
        "message": message,
        "source": rule.source,
    }


def duplicates(out: list[FindingData], rx: Rx, items: Sequence[RxItem], resolved: Sequence[Resolved]) -> None:
    """The same herb written twice, possibly under two names (甘草 and 生甘草; 芍药 and 白芍)."""
    every_key = [key for entry in resolved for key in entry.keys]
    if len(set(every_key)) == len(every_key):
        return
    first: dict[str, int] = {}
    for i, entry in enumerate(resolved):
        for key in entry.keys:
            earlier_index = first.get(key)
            if earlier_index is not None:
                earlier = items[earlier_index]
                # A generic name (芍药) only may be the other herb (白芍).
                generic = len(entry.herbs) > 1 or len(resolved[earlier_index].herbs) > 1
                same = "可能为同一饮片" if generic else "为同一饮片"
                out.append(
                    {
                        "code": codes.DUPLICATE_HERB,
                        "severity": rx.severity(codes.DUPLICATE_HERB),
                        "herbs": [earlier.herb, items[i].herb],
                        "message": f"{earlier.herb}与{items[i].herb}{same}（{key}），重复开具",
                        "source": "处方审核：别名归一后重复",
                    }
                )
                break
        for key in entry.keys:
            first.setdefault(key, i)


def allergies(
    out: list[FindingData],
    rx: Rx,
    items: Sequence[RxItem],
    resolved: Sequence[Resolved],
    allergens: Sequence[str],
    resolve: Callable[[str], Resolved],
) -> None:
    """An allergy matches a herb written under any of its names; a generic allergy (贝母) matches every species."""
    allergen_of: dict[str, str] = {}
    for allergen in allergens:
        found = resolve(allergen)
        if not found.norm:  # a blank entry would match a blank line
            continue
        for key in found.allergy_keys:
            allergen_of.setdefault(key, allergen)
    if not allergen_of:
        return
    for item, entry in zip(items, resolved, strict=True):
        for key in entry.allergy_keys:
            if key in allergen_of:
                out.append(
                    {
                        "code": codes.ALLERGY,
                        "severity": rx.severity(codes.ALLERGY),
                        "herbs": [item.herb],
                        "message": f"患者对{allergen_of[key]}过敏，处方含{item.herb}",
                        "source": "患者药物过敏史",
                    }
                )
                break


def prescription(out: list[FindingData], rx: Rx, validity_days: int | None) -> None:
    regs = rx.regs
    if rx.doses > regs.quantity_days:
        out.append(
            {
                "code": codes.QUANTITY_OVER_LIMIT,
                "severity": rx.severity(codes.QUANTITY_OVER_LIMIT),
                "herbs": [],
                "message": f"共{rx.doses}剂，按每日1剂计为{rx.doses}日用量，超过{regs.quantity_days}日；"
                "慢性病、老年病或特殊情况可适当延长，须医师注明理由并再次签名",
                "source": regs.quantity_source,
            }
        )
    if validity_days is not None and validity_days > regs.validity_max_days:
        out.append(
            {
                "code": codes.VALIDITY_OVER_LIMIT,
                "severity": rx.severity(codes.VALIDITY_OVER_LIMIT),
                "herbs": [],
                "message": f"处方有效期{validity_days}天，超过最长{regs.validity_max_days}天",
                "source": regs.validity_source,
            }
        )
    if rx.online and rx.age < regs.child_online_age:
        out.append(
            {
                "code": codes.CHILD_ONLINE,
                "severity": rx.severity(codes.CHILD_ONLINE),
                "herbs": [],
                "message": f"患儿{age_text(rx.age)}：{regs.child_online_note.split('（')[0]}",
                "source": "互联网诊疗管理办法（试行）第十九条",
            }
        )
