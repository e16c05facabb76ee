"""Children under six (8.1.2.1 c): before a prescription is issued for such a child, the doctor identifies the
guardian who accompanies them and the physician who comes along, and the system records both."""

from __future__ import annotations

from datetime import date

CHILD_AGE_YEARS = 6


def age_in_years(birth: date, on: date) -> int:
    """Completed years of age on `on` (a birthday counts on the day itself)."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def needs_guardian(birth: date | None, on: date) -> bool:
    return birth is not None and age_in_years(birth, on) < CHILD_AGE_YEARS


GUARDIAN_REQUIRED_MESSAGE = (
    "患者未满6周岁：开具处方前须核验并登记陪同就诊的监护人身份（姓名、身份证号）及陪诊医师信息，请先完成登记。"
)
