"""Policy: how severe each rule is, how uncertain data is treated, and how children's doses are judged.

Severities are keyed by finding code, or "CODE:variant" where one code has variants that local policy may
rank differently (a 十九畏 pair is a code of its own; toxic herbs online are a variant of TOXIC_28).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from models.prescription import Severity

RANK: dict[Severity, int] = {severity: rank for rank, severity in enumerate(Severity)}

DEFAULT_SEVERITIES: dict[str, Severity] = {
    # 配伍禁忌 and over-dose need the doctor's second signature (中药处方格式及书写规范 2010; 处方管理办法 6(9)).
    "INCOMPATIBLE_18": Severity.SIGN_AGAIN,
    # The law does not rank 十九畏 below 十八反; engines that do so (warn) can set it here.
    "RESTRAINT_19": Severity.SIGN_AGAIN,
    "PREGNANCY_FORBIDDEN": Severity.BLOCK,
    "PREGNANCY_CAUTION": Severity.WARN,
    "PREGNANCY_CAUTION:nonchp": Severity.INFO,
    "TOXIC_28": Severity.WARN,
    # No national rule bans toxic herbs online; a province or hospital may (set BLOCK).
    "TOXIC_28:online": Severity.WARN,
    "TOXIC_28:over_limit": Severity.BLOCK,
    "TOXIC_28:no_dose": Severity.SIGN_AGAIN,
    "DOSE_ABOVE_MAX": Severity.SIGN_AGAIN,
    "DOSE_BELOW_MIN": Severity.INFO,
    "BANNED_ONLINE": Severity.BLOCK,
    "BANNED_SUBSTANCE": Severity.BLOCK,
    "NARCOTIC": Severity.WARN,
    "NARCOTIC:over_limit": Severity.BLOCK,
    "ALLERGY": Severity.BLOCK,
    "DUPLICATE_HERB": Severity.WARN,
    "UNKNOWN_HERB": Severity.WARN,
    "CHILD_DOSE": Severity.WARN,
    "CHILD_FORBIDDEN": Severity.BLOCK,
    "CHILD_ONLINE": Severity.WARN,
    # 处方管理办法 19 allows more than 7 days with a written reason: the reason comes with the second signature.
    "QUANTITY_OVER_LIMIT": Severity.SIGN_AGAIN,
    "VALIDITY_OVER_LIMIT": Severity.BLOCK,
    "DECOCTION_HINT": Severity.WARN,
    "DECOCTION_HINT:conditional": Severity.INFO,
    "DECOCTION_HINT:textbook": Severity.INFO,
    "DECOCTION_HINT:not_decocted": Severity.WARN,
    "DECOCTION_HINT:processed_only": Severity.WARN,
}


@dataclass(frozen=True, slots=True)
class ChildDosePolicy:
    """Fractions of the adult maximum by age; every published table is a textbook convention, none is law."""

    name: str
    source: str
    # (age upper bound in years, exclusive; fraction of the adult ChP maximum), in ascending age order.
    # Ages past the last bound get the adult dose.
    bands: tuple[tuple[float, Fraction], ...]

    def band(self, age_years: float) -> int | None:
        """The index of the band an age falls in; None past the last band."""
        for index, (upper, _) in enumerate(self.bands):
            if age_years < upper:
                return index
        return None

    def fraction(self, age_years: float) -> Fraction | None:
        band = self.band(age_years)
        return None if band is None else self.bands[band][1]


# 《中医儿科学》: 新生儿 1/6, 乳婴儿 1/3–1/2, 幼儿及幼童 2/3 或成人量, 学龄期 成人量. The upper end of each
# range is the threshold except for 幼儿/幼童, where the adult option would make the band check nothing.
CHILD_DOSE_ZHONGYI_ERKE = ChildDosePolicy(
    name="《中医儿科学》比例给药法",
    source="《中医儿科学》教材比例给药法（版次未核，可配置策略）",
    bands=((28 / 365, Fraction(1, 6)), (1.0, Fraction(1, 2)), (7.0, Fraction(2, 3))),
)
# 《中药学》: under 5 years 1/4, from 5–6 years 1/2 (up to the children's age limit).
CHILD_DOSE_ZHONGYAOXUE = ChildDosePolicy(
    name="《中药学》小儿用量",
    source="《中药学》教材“剂量”节（未核原文，可配置策略）",
    bands=((5.0, Fraction(1, 4)), (14.0, Fraction(1, 2))),
)
# The age-fraction table that circulates for 中成药: 1–2 y 1/4, 2–4 y 1/3, 4–6 y 2/5, 6–9 y 1/2, 9–14 y 2/3.
CHILD_DOSE_AGE_TABLE = ChildDosePolicy(
    name="年龄折算表",
    source="中成药年龄折算表（来源未核，可配置策略）",
    bands=(
        (2.0, Fraction(1, 4)),
        (4.0, Fraction(1, 3)),
        (6.0, Fraction(2, 5)),
        (9.0, Fraction(1, 2)),
        (14.0, Fraction(2, 3)),
    ),
)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    severities: Mapping[str, Severity] = field(default_factory=dict)  # overrides of DEFAULT_SEVERITIES
    # Data marked uncertain (recalled, not checked against the source text) never ranks above this.
    uncertain_max_severity: Severity = Severity.WARN
    # Aliases the data marks uncertain (桂心 → 肉桂); off makes them UNKNOWN_HERB.
    resolve_uncertain_aliases: bool = True
    # 儿科 conventionally treats patients under 14; ChP's "儿童禁用" gives no age.
    child_age_limit_years: float = 14.0
    child_dose: ChildDosePolicy | None = CHILD_DOSE_ZHONGYI_ERKE

    def __post_init__(self) -> None:
        unknown = set(self.severities) - set(DEFAULT_SEVERITIES)
        if unknown:
            raise ValueError(f"unknown severity keys: {sorted(unknown)}")

    def resolved_severities(self) -> dict[str, Severity]:
        return {**DEFAULT_SEVERITIES, **{key: Severity(value) for key, value in self.severities.items()}}
