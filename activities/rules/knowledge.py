"""Turn `tcm-knowledge.json` into lookup tables, once, so that a check does no parsing and no I/O.

The loader is strict: an alias annotation, route note or table entry it does not understand is an error,
so that a new edition of the data cannot silently drop a rule.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from activities.rules.codes import INCOMPATIBLE_18, RESTRAINT_19
from activities.rules.names import GENERIC_NAMES, normalize_name

DEFAULT_PATH = Path(__file__).with_name("tcm-knowledge.json")


class KnowledgeError(ValueError):
    """The knowledge file is missing something the engine relies on, or says something it cannot interpret."""


class Route(StrEnum):
    NOT_DECOCTED = "not_decocted"  # ChP: 多入丸散 / 不宜入煎剂
    PROCESSED_ONLY = "processed_only"  # ChP: 生品仅外用 / 一般炮制后用


@dataclass(frozen=True, slots=True)
class Toxic28:
    """One entry of the 28 toxic materials of 国务院令第23号."""

    regulation_name: str
    # The regulation controls raw forms only ("生川乌"), except for materials listed without a 生 prefix
    # (砒石, 斑蝥, 雄黄 …), which are controlled whatever their processing.
    whole_herb: bool
    raw_names: frozenset[str]


@dataclass(slots=True)
class Herb:
    """Everything the rules need about one canonical herb; built by the loader and read-only afterwards."""

    name: str
    min_g: float | None = None
    max_g: float | None = None
    dose_source: str = ""
    dose_uncertain: bool = False
    pregnancy: str | None = None  # forbidden | caution | caution_nonchp
    pregnancy_source: str = ""
    pregnancy_uncertain: bool = False
    decoction: str | None = None  # method required by ChP 【用法与用量】
    decoction_note: str | None = None
    decoction_textbook: str | None = None  # textbook-only method, a softer hint
    route: Route | None = None
    toxic28: Toxic28 | None = None
    banned: bool = False  # may not be prescribed at all; banned_source says by whom
    banned_source: str = ""
    narcotic: bool = False
    child_forbidden_source: str | None = None


@dataclass(frozen=True, slots=True)
class PairRule:
    code: str
    other: str
    label: str
    source: str
    uncertain: bool  # recalled or extended, not read in the source: severity is capped by policy


@dataclass(frozen=True, slots=True)
class Regulations:
    """Numbers and citations taken from the data's `rules` and `toxic_28_rules` sections."""

    quantity_days: int
    quantity_source: str
    validity_max_days: int
    validity_source: str
    narcotic_max_days: int
    narcotic_no_single_herb: bool
    narcotic_paper: str
    narcotic_source: str
    online_banned_source: str
    child_online_note: str
    child_online_age: float
    toxic_source: str
    toxic_dispensing: str
    toxic_validity: str
    names_source: str
    decoction_source: str


@dataclass(frozen=True, slots=True)
class Knowledge:
    edition: str  # e.g. 中国药典2020年版一部, stamped on every pharmacopoeia-backed finding
    herbs: dict[str, Herb]
    names: dict[str, tuple[str, ...]]  # normalized written name → canonical herb names
    uncertain_aliases: dict[str, tuple[str, ...]]
    # canonical name → the other herb → the rules on that pair; stored under both names of every pair
    pairs: dict[str, dict[str, tuple[PairRule, ...]]]
    regulations: Regulations


def load_knowledge(path: Path | str | None = None) -> Knowledge:
    data = json.loads(Path(path or DEFAULT_PATH).read_text(encoding="utf-8"))
    try:
        return _Builder(data).build()
    except KeyError as exc:
        raise KnowledgeError(f"knowledge file lacks {exc}") from exc


class _Builder:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.edition = _edition(data["meta"]["primary_sources"])
        self.herbs: dict[str, Herb] = {}
        self.names: dict[str, set[str]] = {}
        self.uncertain_aliases: dict[str, set[str]] = {}
        self.pairs: dict[str, dict[str, list[PairRule]]] = {}

    def build(self) -> Knowledge:
        for record in self.data["herbs"]:
            self._add_herb(record)
        for record in self.data["herbs"]:
            self._add_aliases(record)
        self._add_pregnancy_uncertainty()
        self._add_toxic_28()
        self._add_special_rules()
        self._add_incompatibilities()
        self._add_restraints()
        for generic, species in GENERIC_NAMES.items():
            self._require(species, f"generic name {generic}")
            self._name(generic, *species)
        return Knowledge(
            edition=self.edition,
            herbs=self.herbs,
            names={key: tuple(sorted(value)) for key, value in self.names.items()},
            uncertain_aliases={key: tuple(sorted(value)) for key, value in self.uncertain_aliases.items()},
            pairs={
                name: {other: tuple(rules) for other, rules in by_other.items()}
                for name, by_other in self.pairs.items()
            },
            regulations=self._regulations(),
        )

    def _name(self, written: str, *canonical: str) -> None:
        self.names.setdefault(normalize_name(written), set()).update(canonical)

    def _require(self, names: tuple[str, ...] | list[str], where: str) -> None:
        missing = [name for name in names if name not in self.herbs]
        if missing:
            raise KnowledgeError(f"{where} names unknown herbs {missing}")

    def _add_herb(self, record: dict[str, Any]) -> None:
        name = record["name"]
        herb = Herb(name=name, min_g=record["min_g"], max_g=record["max_g"])
        # Doses without a ChP monograph come from a textbook; the file says where in `dose_source`.
        herb.dose_uncertain = not record["in_chp2020"]
        herb.dose_source = record.get("dose_source") or record["source"].split("; via ")[0]
        herb.pregnancy = record["pregnancy"]
        if herb.pregnancy:
            quote = record.get("pregnancy_chp_quote")
            herb.pregnancy_source = (
                f"{self.edition}【{name}】【注意】“{quote}”"
                if quote
                else record.get("pregnancy_note") or self.data["pregnancy"]["source"]
            )
        herb.decoction = record["decoction"]
        herb.decoction_note = record.get("decoction_note")
        textbook = record.get("decoction_textbook")
        # "冲服(研粉，可选)" is an option, not a requirement; hinting it on every 三七 would be noise.
        if textbook and "可选" not in textbook:
            herb.decoction_textbook = textbook
        herb.route = _route(name, record.get("route_note"))
        if record.get("banned"):
            herb.banned = True
            herb.banned_source = record.get("note") or "禁止入药"
        self.herbs[name] = herb
        self._name(name, name)

    def _add_aliases(self, record: dict[str, Any]) -> None:
        name = record["name"]
        for alias in record.get("aliases", []):
            written = normalize_name(alias)  # folds "半夏(生)" into "生半夏"; other brackets are annotations
            annotated = re.fullmatch(r"(?P<alias>[^(（]+)[(（](?P<note>.+)[)）]", alias)
            if "(" not in written or not annotated:
                self._name(written, name)
                continue
            alias_name, note = normalize_name(annotated["alias"]), annotated["note"]
            if "另一药典品种" in note or "不同方" in note:
                continue  # listed to warn that it is a different herb, not another name for this one
            if "已禁用" in note:
                self._add_pseudo_herb(alias_name)
                banned = self.herbs[alias_name]
                banned.banned = True
                banned.banned_source = f"知识库【{name}】别名注：{alias_name}{note}"
            elif "uncertain" in note:
                self.uncertain_aliases.setdefault(alias_name, set()).add(name)
            else:
                raise KnowledgeError(f"alias annotation of {name} not understood: {alias}")

    def _add_pseudo_herb(self, name: str) -> None:
        """A name the rules mention but the herb list lacks (土贝母, 明党参): known, with no dose data."""
        if name not in self.herbs:
            self.herbs[name] = Herb(name=name)
            self._name(name, name)

    def _add_pregnancy_uncertainty(self) -> None:
        pregnancy = self.data["pregnancy"]
        notes = pregnancy["uncertain"] + pregnancy["nonchp_caution_notes"]
        for entry in notes:
            if entry.get("uncertain"):
                self._require([entry["name"]], "pregnancy.uncertain")
                self.herbs[entry["name"]].pregnancy_uncertain = True
        for level in ("forbidden", "caution", "caution_nonchp"):
            for name in pregnancy[level]:
                self._require([name], f"pregnancy.{level}")
                if self.herbs[name].pregnancy != level:
                    raise KnowledgeError(f"pregnancy.{level} lists {name}, whose record says otherwise")

    def _add_toxic_28(self) -> None:
        details = self.data["toxic_28_details"]
        if len(details) != len(self.data["toxic_28"]):
            raise KnowledgeError("toxic_28_details does not cover toxic_28")
        for entry in details:
            record = entry["herb_record"]
            self._require([record], "toxic_28_details")
            raw_names = frozenset(normalize_name(name) for name in entry["match_names"])
            self.herbs[record].toxic28 = Toxic28(
                regulation_name=entry["regulation_name"],
                whole_herb=record in raw_names,
                raw_names=raw_names,
            )
            for name in entry["match_names"]:
                self._name(name, record)

    def _add_special_rules(self) -> None:
        rules = self.data["rules"]
        poppy = rules["poppy_husk"]["name"]
        self._require([poppy], "rules.poppy_husk")
        self.herbs[poppy].narcotic = True
        for entry in rules["pediatric_dose"]["chp_pediatric_forbidden"]:
            parsed = re.fullmatch(r"(?P<name>[^(]+)\((?P<quote>.+)\)", normalize_name(entry))
            if not parsed:
                raise KnowledgeError(f"chp_pediatric_forbidden entry not understood: {entry}")
            self._require([parsed["name"]], "chp_pediatric_forbidden")
            quote = entry[len(parsed["name"]) + 1 : -1]
            self.herbs[parsed["name"]].child_forbidden_source = f"{self.edition}【{parsed['name']}】【注意】“{quote}”"

    def _pair(self, left: str, right: str, code: str, label: str, source: str, uncertain: bool = False) -> None:
        """Store the rule under both names, so a check only looks up the herbs actually prescribed."""
        for name, other in ((left, right), (right, left)):
            rule = PairRule(code, other, label, source, uncertain)
            self.pairs.setdefault(name, {}).setdefault(other, []).append(rule)

    def _add_incompatibilities(self) -> None:
        group_of: dict[tuple[str, str], str] = {}
        for group in self.data["eighteen_incompatible_groups"]:
            for left in group["left"]:
                for right in group["right"]:
                    group_of[(left, right)] = group["key"]
        for left, right in self.data["eighteen_incompatible"]:
            self._require([left, right], "eighteen_incompatible")
            key = group_of.get((left, right)) or group_of.get((right, left))
            if key is None:
                raise KnowledgeError(f"十八反 pair {left}–{right} belongs to no group")
            self._pair(
                left, right, INCOMPATIBLE_18, f"十八反“{key}”", f"十八反（《儒门事亲》）；{self.edition}【注意】"
            )
        for entry in self.data["eighteen_incompatible_uncertain"]:
            # Entries with uncertain=false explain aliases or traps (白附子); the alias table already covers them.
            if not entry["uncertain"]:
                continue
            left, right = entry["pair"]
            for name in (left, right):
                self._add_pseudo_herb(name)
            source = f"十八反扩展（未核药典原文）：{entry['note']}"
            self._pair(left, right, INCOMPATIBLE_18, "十八反传统扩展", source, uncertain=True)

    def _add_restraints(self) -> None:
        text = self.data["nineteen_restraints_source"]
        rhyme = text.split("：")[0]
        chp_backed = _chp_backed_restraints(text)
        listed = {frozenset(pair) for pair in self.data["nineteen_restraints"]}
        if not chp_backed <= listed:
            raise KnowledgeError(f"ChP 十九畏 pairs missing from the list: {chp_backed - listed}")
        for left, right in self.data["nineteen_restraints"]:
            self._require([left, right], "nineteen_restraints")
            source = f"{rhyme}；{self.edition}【注意】" if {left, right} in chp_backed else f"{rhyme}（药典未载）"
            self._pair(left, right, RESTRAINT_19, "十九畏", source)
        for entry in self.data["nineteen_restraints_uncertain"]:
            left, right = entry["pair"]
            self._require([left, right], "nineteen_restraints_uncertain")
            source = f"十九畏扩展（未核药典原文）：{entry['note']}"
            self._pair(left, right, RESTRAINT_19, "十九畏传统扩展", source, uncertain=True)

    def _regulations(self) -> Regulations:
        rules = self.data["rules"]
        poppy = rules["poppy_husk"]
        toxic = self.data["toxic_28_rules"]
        online = rules["online_consultation"]
        names_rule = next(line for line in rules["herbal_rx_format"] if "药名" in line)
        return Regulations(
            quantity_days=int(rules["quantity_limit"]["general_days"]),
            quantity_source=rules["quantity_limit"]["source"],
            validity_max_days=int(rules["prescription_validity"]["max_days_if_doctor_notes"]),
            validity_source=rules["prescription_validity"]["source"],
            narcotic_max_days=int(poppy["max_days_per_rx"]),
            narcotic_no_single_herb=bool(poppy["no_single_herb_dispensing"]),
            narcotic_paper=poppy["rx_paper"],
            narcotic_source=poppy["source"],
            online_banned_source=online["banned_drugs_online"],
            child_online_note=online["child_under_6"],
            child_online_age=_age_in(online["child_under_6"]),
            toxic_source=toxic["source"],
            toxic_dispensing=toxic["dispensing"],
            toxic_validity=toxic["validity"],
            names_source=f"中药处方格式及书写规范：{names_rule}",
            decoction_source=rules["decoction_methods"]["source"],
        )


def _edition(primary_sources: list[str]) -> str:
    for source in primary_sources:
        found = re.search(r"药典(\d{4})年版一部", source)
        if found:
            return f"中国药典{found[1]}年版一部"
    raise KnowledgeError("meta.primary_sources names no pharmacopoeia edition")


def _age_in(text: str) -> float:
    found = re.search(r"(\d+)岁以下", text)
    if not found:
        raise KnowledgeError(f"no age limit in: {text}")
    return float(found[1])


def _route(name: str, note: str | None) -> Route | None:
    if note is None:
        return None
    if "不宜入煎剂" in note:
        return Route.NOT_DECOCTED
    if "生品仅外用" in note:
        return Route.PROCESSED_ONLY
    raise KnowledgeError(f"route_note of {name} not understood: {note}")


def _chp_backed_restraints(text: str) -> set[frozenset[str]]:
    """Parse "…对应：硫黄—芒硝/玄明粉；芒硝/玄明粉—硫黄、三棱；…" into unordered pairs."""
    _, sep, listing = text.partition("对应：")
    if not sep:
        raise KnowledgeError("nineteen_restraints_source does not list the ChP-backed pairs")
    pairs: set[frozenset[str]] = set()
    for clause in listing.rstrip("。").split("；"):
        left, dash, right = clause.partition("—")
        if not dash:
            raise KnowledgeError(f"ChP 十九畏 clause not understood: {clause}")
        for a in re.split("[/、]", left):
            for b in re.split("[/、]", right):
                pairs.add(frozenset((a.strip(), b.strip())))
    return pairs
