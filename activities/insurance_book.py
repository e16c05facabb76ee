"""What the platform itself recorded of 医保 settlements, for the daily 3201/3202 check.

This is a seam, not a ledger: the platform keeps no table of 医保 settlements yet (no flow settles through 2207 or
6202 so far). `NoInsuranceSettlements` answers with nothing, so the 3201 check compares zero with what the 医保
platform holds, and anything settled there shows up as a difference. When a settlement table exists, implement
`InsuranceBook` over it and hand that to the reconciliation activities instead.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol

from pydantic import BaseModel

from activities.adapters.insurance.sandbox import ADMDVS as SANDBOX_ADMDVS
from core.settings import Settings
from models.insurance import DailyCheckLine
from models.reconciliation import InsuranceGroup

# 职工基本医疗保险 and 城乡居民基本医疗保险, cleared as 门诊 (11): what an online TCM clinic settles.
_INSUTYPES = ("310", "390")
_OUTPATIENT = "11"


class BookedSettlement(BaseModel):
    group: InsuranceGroup
    line: DailyCheckLine


class InsuranceBook(Protocol):
    async def settled_on(self, bill_date: date) -> list[BookedSettlement]:
        """The settlements of `bill_date` (Beijing time) as the platform recorded them, cancelled ones flagged."""
        ...


class NoInsuranceSettlements:
    async def settled_on(self, bill_date: date) -> list[BookedSettlement]:
        return []


def standing_groups(settings: Settings) -> list[InsuranceGroup]:
    """The totals checked every day even when the platform recorded nothing: the hospital's own clearing
    institution, for each insurance type. Settlements of other groups are checked as well, as they occur."""
    if settings.adapter_insurance == "sandbox":
        optins = SANDBOX_ADMDVS
    else:
        optins = str(settings.insurance_nhsa.get("insuplc_admdvs", ""))
    if not optins:
        return []
    return [InsuranceGroup(insutype=insutype, clr_type=_OUTPATIENT, setl_optins=optins) for insutype in _INSUTYPES]
