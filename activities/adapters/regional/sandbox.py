"""Sandbox regional platform: the demo patients' records in memory, plus a hook that adds more (tests, demos).

Each demo patient has the offline visit of the sandbox HIS and EMR (`activities.adapters.emr.sandbox.DEMOS`) filed
by this hospital (`settings.hospital_org_code`), and a visit to a community health centre of the region, which the
revisit check must not count. Read-only to us, like the sandbox EMR: every worker builds the same records.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.emr import ICD10_SYSTEM, LOCAL_DISEASE_SYSTEM, normalize_name
from activities.adapters.emr.sandbox import DEMO_AGE, DEMOS
from activities.adapters.his import PatientIdentity
from activities.adapters.regional import RegionalDiagnosis
from activities.adapters.sandbox import recorder_for
from core.crypto.sm import sm3_hex
from core.settings import Settings
from models import idcard
from models.common import HOSPITAL_TZ
from models.emr import CodeKind, DiagnosisCode, EncounterSetting

SYSTEM = "regional"
COMMUNITY_CENTRE = ("Q110101000099", "东城区社区卫生服务中心")
_VISIT_TIME = time(10)


class SandboxRegional:
    name = "sandbox"

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._recorder = recorder_for(sessions, settings)
        self._org = (settings.hospital_org_code, settings.hospital_name)
        # Normalized ID-card number → (normalized name, diagnoses).
        self._people: dict[str, tuple[str, list[RegionalDiagnosis]]] = {}
        self._add_demo(datetime.now(HOSPITAL_TZ).date() - DEMO_AGE)

    async def diagnoses(self, *, patient: PatientIdentity, since: date, purpose: str) -> list[RegionalDiagnosis]:
        number = idcard.normalize(patient.id_card_no)
        await self._recorder.gate(SYSTEM, "diagnoses", sm3_hex(number.encode()))
        known = self._people.get(number)
        if known is None or known[0] != normalize_name(patient.name):
            return []
        found = [d for d in known[1] if d.diagnosed_at.astimezone(HOSPITAL_TZ).date() >= since]
        return sorted(found, key=lambda d: d.diagnosed_at, reverse=True)

    # --- simulator hook (tests and demos; see `contract.RegionalSimulator`) ------------------------------------------

    async def add_diagnosis(
        self,
        *,
        id_card_no: str,
        name: str,
        on: date,
        diagnosis_name: str,
        codes: Sequence[DiagnosisCode],
        here: bool = True,
        encounter_id: str | None = None,
        department: str = "中医内科",
        practitioner: str = "王医生",
    ) -> RegionalDiagnosis:
        """One finished ambulatory encounter in the morning of hospital day `on`, at this hospital unless not `here`
        (then at a community health centre)."""
        number = idcard.normalize(id_card_no)
        filed = self._people.get(number, ("", []))[1]
        encounter = encounter_id or f"rg-{sm3_hex(number.encode())[:12]}-{len(filed) + 1}"
        org = self._org if here else COMMUNITY_CENTRE
        return self._file(number, name, encounter, on, diagnosis_name, codes, org, department, practitioner)

    def _file(
        self,
        number: str,
        name: str,
        encounter_id: str,
        on: date,
        diagnosis_name: str,
        codes: Sequence[DiagnosisCode],
        org: tuple[str, str],
        department: str,
        practitioner: str,
    ) -> RegionalDiagnosis:
        diagnosis = RegionalDiagnosis(
            encounter_ref=encounter_id,
            name=diagnosis_name,
            codes=list(codes),
            setting=EncounterSetting.AMBULATORY,
            diagnosed_at=datetime.combine(on, _VISIT_TIME, HOSPITAL_TZ),
            department=department,
            practitioner=practitioner,
            org_code=org[0],
            org_name=org[1],
        )
        self._people.setdefault(number, (normalize_name(name), []))[1].append(diagnosis)
        return diagnosis

    def _add_demo(self, day: date) -> None:
        for demo in DEMOS:
            number = idcard.normalize(demo.id_card_no)
            local = DiagnosisCode(
                kind=CodeKind.LOCAL, system=LOCAL_DISEASE_SYSTEM, code=demo.disease[0], display=demo.disease[1]
            )
            icd10 = DiagnosisCode(kind=CodeKind.ICD10, system=ICD10_SYSTEM, code=demo.icd10[0], display=demo.icd10[1])
            self._file(
                number, demo.name, demo.encounter_id, day, demo.disease[1], [local, icd10], self._org,
                demo.department, demo.doctor,
            )  # fmt: skip
            self._file(
                number, demo.name, f"{demo.encounter_id}-community", day, demo.icd10[1], [icd10], COMMUNITY_CENTRE,
                "全科", "赵医生",
            )  # fmt: skip
