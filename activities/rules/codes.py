"""Finding codes and what they mean, as listed to API clients."""

from __future__ import annotations

INCOMPATIBLE_18 = "INCOMPATIBLE_18"
RESTRAINT_19 = "RESTRAINT_19"
PREGNANCY_FORBIDDEN = "PREGNANCY_FORBIDDEN"
PREGNANCY_CAUTION = "PREGNANCY_CAUTION"
TOXIC_28 = "TOXIC_28"
DOSE_ABOVE_MAX = "DOSE_ABOVE_MAX"
DOSE_BELOW_MIN = "DOSE_BELOW_MIN"
BANNED_ONLINE = "BANNED_ONLINE"
BANNED_SUBSTANCE = "BANNED_SUBSTANCE"
NARCOTIC = "NARCOTIC"
ALLERGY = "ALLERGY"
DUPLICATE_HERB = "DUPLICATE_HERB"
UNKNOWN_HERB = "UNKNOWN_HERB"
CHILD_DOSE = "CHILD_DOSE"
CHILD_FORBIDDEN = "CHILD_FORBIDDEN"
CHILD_ONLINE = "CHILD_ONLINE"
QUANTITY_OVER_LIMIT = "QUANTITY_OVER_LIMIT"
VALIDITY_OVER_LIMIT = "VALIDITY_OVER_LIMIT"
DECOCTION_HINT = "DECOCTION_HINT"

RULE_CODES: dict[str, str] = {
    INCOMPATIBLE_18: "十八反配伍禁忌；确需同用须医师在药品上方再次签名",
    RESTRAINT_19: "十九畏配伍禁忌；确需同用须医师再次签名（严重程度可配置）",
    PREGNANCY_FORBIDDEN: "孕妇禁用药（药典“孕妇禁用/忌用/禁服”及毒性药品）",
    PREGNANCY_CAUTION: "孕妇慎用药（药典“孕妇慎用”；教材/规则库扩展项为提示）",
    TOXIC_28: "医疗用毒性药品（28种毒性中药生品等）：专门调配要求，每次处方不超过二日极量",
    DOSE_ABOVE_MAX: "单味用量超过药典成人日用量上限；须注明理由并再次签名",
    DOSE_BELOW_MIN: "单味用量低于药典常用量下限",
    BANNED_ONLINE: "互联网诊疗不得开具的麻醉药品、精神药品（如罂粟壳）",
    BANNED_SUBSTANCE: "禁止入药的药材（如犀角）",
    NARCOTIC: "线下开具麻醉药品（罂粟壳）的处方、天数与单方发药限制",
    ALLERGY: "处方含患者过敏的药物",
    DUPLICATE_HERB: "名称归一后同一饮片重复开具",
    UNKNOWN_HERB: "知识库未收录的药名，无法审核，须人工核对",
    CHILD_DOSE: "儿童用量超过按年龄折算的成人量（折算策略可配置）",
    CHILD_FORBIDDEN: "药典儿童禁用药",
    CHILD_ONLINE: "互联网为6岁以下儿童开方须确认监护人和相关专业医师陪伴",
    QUANTITY_OVER_LIMIT: "处方超过7日用量；须注明理由并再次签名",
    VALIDITY_OVER_LIMIT: "处方有效期超过3天",
    DECOCTION_HINT: "特殊煎法（先煎、后下、包煎、另煎、烊化、冲服）未注明或不符，或不宜入煎剂",
}
