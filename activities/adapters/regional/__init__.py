"""The regional health-record platform (区域全民健康信息平台): the health records of a person that every institution
of the region files there, the third source of revisit evidence (8.1.2.2 c) after the hospital's HIS and EMR.

The platform answers for every institution of the region; the revisit check keeps only what this hospital diagnosed
(`RegionalDiagnosis.org_code`), since online follow-up is allowed only after an offline visit here (8.1.2.1 b).
Platforms log every look-up with its purpose (调阅目的); we state it on each call.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol, runtime_checkable

from activities.adapters.his import PatientIdentity
from models.emr import EmrDiagnosis


class RegionalDiagnosis(EmrDiagnosis):
    """One diagnosis of one finished offline encounter, at the institution `org_code` of the region."""

    # The institution's code as the platform registers it (医疗机构代码), and its name.
    org_code: str
    org_name: str


@runtime_checkable
class RegionalHealthRecords(Protocol):
    name: str

    async def diagnoses(self, *, patient: PatientIdentity, since: date, purpose: str) -> list[RegionalDiagnosis]:
        """The person's diagnoses at any institution of the region on or after hospital day `since`, newest first.
        ID-card number AND name must both match, else nothing. `purpose` is what the platform logs the look-up as."""
        ...
