"""用药指导 (8.3.3.3, 8.3.9.4): how to prepare and take a paid prescription, and what to avoid while taking it, from the
same knowledge file the rule engine checks with (decoction methods, decoction volumes, pregnancy and children's
contraindications, toxicity, 十八反/十九畏 partners).

The patient reads this, so it names only the herbs of their prescription and speaks plainly; where a caution holds
for some patients only (pregnancy, children), it is given when the patient may be one of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from activities.rules.codes import INCOMPATIBLE_18
from activities.rules.engine import RuleEngine, default_engine
from activities.rules.herb_rules import methods_in
from activities.rules.knowledge import DEFAULT_PATH, Herb
from models.aftercare import Caution, CautionKind, DecoctionStep, MedicationGuidance
from models.prescription import PatientFacts, PrescriptionDraft

# Below this age the decoction volume of a child applies (儿科 serves patients under 14).
CHILD_AGE = 14
METHOD_ORDER = ("先煎", "另煎", "后下", "包煎", "烊化", "冲服")

# How a doctor writes the number of times a day ("早晚分服", "分三次温服", "一日2次").
_TIMES = (
    (re.compile(r"早中晚|[分日天][三3]次|每日三服"), 3),
    (re.compile(r"早晚|[分日天][两二2]次|每日两服"), 2),
    (re.compile(r"顿服|[日天][一1]次"), 1),
)

_HOME_DECOCTION = [
    "用砂锅或不锈钢锅煎药，不用铁锅、铝锅。",
    "煎前先用冷水浸泡30分钟，水面高出药材2～3厘米。",
    "每剂煎两次：大火煮沸后改小火，第一煎20～30分钟，第二煎15～20分钟；两次药液混合后分次服用。",
]
_PHARMACY_DECOCTION = [
    "药房已代煎并分袋包装，每袋为一次服用量。",
    "药液请冷藏保存；服用前将药袋放入热水中温热，不要用微波炉加热。",
]
_ALWAYS = [
    "服药期间饮食宜清淡，忌生冷、辛辣、油腻。",
    "如出现皮疹、心慌、腹泻等不适，请停药并通过“不良反应反馈”告诉药师。",
]


@dataclass(frozen=True)
class _Data:
    """What the knowledge file says beyond what the engine loads: the method texts and volumes, and toxicity."""

    methods: dict[str, str]
    methods_source: str
    volume_ml: dict[str, tuple[int, int]]
    volume_source: str
    toxicity: dict[str, str]


@cache
def _data() -> _Data:
    raw: dict[str, Any] = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    methods = dict(raw["rules"]["decoction_methods"])
    volumes = dict(raw["rules"]["pediatric_dose"]["decoction_volume_ml"])
    return _Data(
        methods_source=methods.pop("source"),
        methods=methods,
        volume_source=volumes.pop("source"),
        volume_ml={group: (int(low), int(high)) for group, (low, high) in volumes.items()},
        toxicity={h["name"]: h["chp_toxicity"] for h in raw["herbs"] if h.get("chp_toxicity")},
    )


def times_per_day(usage: str) -> int | None:
    compact = "".join(usage.split())
    return next((times for pattern, times in _TIMES if pattern.search(compact)), None)


def medication_guidance(
    prescription_id: str,
    draft: PrescriptionDraft,
    patient: PatientFacts,
    decocted_by_pharmacy: bool,
    engine: RuleEngine | None = None,
) -> MedicationGuidance:
    engine = engine or default_engine()
    data = _data()
    herbs = {item.herb: [engine.knowledge.herbs[name] for name in engine.canonical(item.herb)] for item in draft.items}
    times = times_per_day(draft.usage)
    low, high = data.volume_ml["child" if patient.age_years < CHILD_AGE else "adult"]
    volume = f"{low // times}～{high // times}毫升" if times else None
    return MedicationGuidance(
        prescription_id=prescription_id,
        usage=draft.usage,
        doses=draft.doses,
        days=draft.days or draft.doses,
        times_per_day=times,
        volume_per_time=volume,
        decocted_by_pharmacy=decocted_by_pharmacy,
        preparation=[*(_PHARMACY_DECOCTION if decocted_by_pharmacy else _HOME_DECOCTION), *_ALWAYS],
        decoction=[] if decocted_by_pharmacy else _decoction(draft, herbs, data),
        cautions=_cautions(herbs, patient, engine, data),
    )


def _decoction(draft: PrescriptionDraft, herbs: dict[str, list[Herb]], data: _Data) -> list[DecoctionStep]:
    """Each special method with its herbs: as the doctor wrote it, else as the pharmacopoeia requires it."""
    by_method: dict[str, list[str]] = {}
    for item in draft.items:
        methods = methods_in(item.decoction) or {h.decoction for h in herbs[item.herb] if h.decoction}
        for method in methods:
            by_method.setdefault(method, []).append(item.herb)
    return [
        DecoctionStep(method=method, herbs=by_method[method], how=data.methods[method])
        for method in METHOD_ORDER
        if method in by_method
    ]


def _cautions(herbs: dict[str, list[Herb]], patient: PatientFacts, engine: RuleEngine, data: _Data) -> list[Caution]:
    out: list[Caution] = []
    edition = engine.knowledge.edition
    if patient.sex != "male":
        for level, kind, text in (
            ("forbidden", CautionKind.PREGNANCY_FORBIDDEN, "孕妇禁用"),
            ("caution", CautionKind.PREGNANCY_CAUTION, "孕妇慎用"),
        ):
            named = [written for written, found in herbs.items() if any(h.pregnancy == level for h in found)]
            if named:
                out.append(
                    Caution(
                        kind=kind,
                        herbs=named,
                        message=f"方中{'、'.join(named)}{text}。如已怀孕或准备怀孕，请先告诉医生或药师。",
                        source=edition,
                    )
                )
    if patient.age_years < CHILD_AGE:
        named = _named(herbs, lambda h: h.child_forbidden_source is not None)
        if named:
            out.append(
                Caution(kind=CautionKind.CHILD_FORBIDDEN, herbs=named, message=f"方中{'、'.join(named)}儿童禁用。")
            )
    toxic = _named(herbs, lambda h: h.name in data.toxicity)
    if toxic:
        out.append(
            Caution(
                kind=CautionKind.TOXIC,
                herbs=toxic,
                message=f"方中{'、'.join(toxic)}有毒性，请严格按医嘱的剂量和疗程服用，不要自行加量或延长服用。",
                source=edition,
            )
        )
    out.extend(_partners(herbs, engine))
    return out


def _named(herbs: dict[str, list[Herb]], test: Callable[[Herb], bool]) -> list[str]:
    return [written for written, found in herbs.items() if any(test(h) for h in found)]


def _partners(herbs: dict[str, list[Herb]], engine: RuleEngine) -> Iterable[Caution]:
    """十八反/十九畏: herbs outside the prescription that must not be taken with one inside it (other remedies the
    patient may be taking). Pairs the data marks uncertain are left out: they are not for patients."""
    inside = {h.name for found in herbs.values() for h in found}
    for written, found in herbs.items():
        for code, kind, word in (
            (INCOMPATIBLE_18, CautionKind.INCOMPATIBLE, "相反（十八反）"),
            (None, CautionKind.RESTRAINT, "相畏（十九畏）"),
        ):
            partners: list[str] = []
            sources: list[str] = []
            for herb in found:
                for other, rules in engine.knowledge.pairs.get(herb.name, {}).items():
                    matching = [r for r in rules if (r.code == INCOMPATIBLE_18) == (code is not None)]
                    if other not in inside and other not in partners and any(not r.uncertain for r in matching):
                        partners.append(other)
                        sources.extend(r.source for r in matching if r.source not in sources)
            if partners:
                yield Caution(
                    kind=kind,
                    herbs=[written],
                    message=f"{written}与{'、'.join(partners)}{word}，服药期间请勿同时服用含这些药材的中药或中成药。",
                    source="；".join(sources),
                )
