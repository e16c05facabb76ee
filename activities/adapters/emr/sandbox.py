"""Sandbox EMR: the demo patients' offline records, in memory, plus hooks that add more (tests, demos).

The demo records are the people, encounters, diseases, departments and doctors of `workers.seed`
(`DEMO_IDENTITIES`, `DEMO_HIS_DIAGNOSES`), dated `DEMO_AGE` before the sandbox was made, as the sandbox HIS's
are, so a demo patient finds the same offline visit through either. They need no database: the EMR is read-only
to us, and every worker builds the same records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.emr import ICD10_SYSTEM, LOCAL_DISEASE_SYSTEM, normalize_name
from activities.adapters.sandbox import recorder_for
from core.crypto.sm import sm3_hex
from core.settings import Settings
from models import idcard
from models.common import HOSPITAL_TZ
from models.emr import (
    CodeKind,
    DiagnosisCode,
    EmrAttachment,
    EmrDiagnosis,
    EmrDocument,
    EmrPatient,
    EncounterSetting,
)

SYSTEM = "emr"
DEMO_AGE = timedelta(days=30)
# Offline visits happen in the morning clinic; documents are filed after it.
_VISIT_TIME = time(10)
_FILED_TIME = time(11)


@dataclass(frozen=True)
class _Demo:
    username: str
    name: str
    id_card_no: str
    encounter_id: str
    disease: tuple[str, str]  # our catalogue code and name
    icd10: tuple[str, str]
    department: str
    doctor: str


DEMOS = (
    _Demo(
        username="demo-patient",
        name="张三",
        id_card_no="110101198001010010",
        encounter_id="his-enc-demo-1",
        disease=("TCM-PW-001", "胃痞病"),
        icd10=("K30", "功能性消化不良"),
        department="脾胃病科",
        doctor="李明远",
    ),
    _Demo(
        username="demo-patient2",
        name="李四",
        id_card_no="310104198506150031",
        encounter_id="his-enc-demo-2",
        disease=("TCM-XN-004", "不寐"),
        icd10=("G47.0", "失眠"),
        department="心血管科（中医内科）",
        doctor="陈素琴",
    ),
)


@dataclass(frozen=True)
class _Encounter:
    patient_ref: str
    finished: bool
    here: bool
    diagnosis: EmrDiagnosis


class SandboxEmr:
    name = "sandbox"

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._recorder = recorder_for(sessions, settings)
        self._patients: dict[str, tuple[str, EmrPatient]] = {}  # normalized ID-card number → (normalized name, record)
        self._encounters: list[_Encounter] = []
        self._documents: list[tuple[str, EmrDocument]] = []
        self._add_demo(datetime.now(HOSPITAL_TZ).date() - DEMO_AGE)

    # --- Emr ---------------------------------------------------------------------------------------------------------

    async def find_patient(self, *, id_card_no: str, name: str) -> EmrPatient | None:
        number = idcard.normalize(id_card_no)
        await self._recorder.gate(SYSTEM, "find_patient", sm3_hex(number.encode()))
        known = self._patients.get(number)
        if known is None or known[0] != normalize_name(name):
            return None
        return known[1]

    async def offline_diagnoses(self, *, patient_ref: str, since: date) -> list[EmrDiagnosis]:
        await self._recorder.gate(SYSTEM, "offline_diagnoses", patient_ref)
        found = [
            e.diagnosis
            for e in self._encounters
            if e.patient_ref == patient_ref
            and e.finished
            and e.here
            and e.diagnosis.diagnosed_at.astimezone(HOSPITAL_TZ).date() >= since
        ]
        return sorted(found, key=lambda d: d.diagnosed_at, reverse=True)

    async def documents(self, *, patient_ref: str, since: date) -> list[EmrDocument]:
        await self._recorder.gate(SYSTEM, "documents", patient_ref)
        found = [
            document
            for owner, document in self._documents
            if owner == patient_ref and document.created_at.astimezone(HOSPITAL_TZ).date() >= since
        ]
        return sorted(found, key=lambda d: d.created_at, reverse=True)

    # --- simulator hooks (tests and demos; see `contract.EmrSimulator`) ----------------------------------------------

    async def add_patient(self, *, id_card_no: str, name: str) -> str:
        """Register a person (again: same number, same record) and return the record's reference."""
        number = idcard.normalize(id_card_no)
        return self._put_patient(f"Patient/sb-{sm3_hex(number.encode())[:16]}", number, name)

    async def add_encounter(
        self,
        *,
        patient_ref: str,
        on: date,
        diagnosis_name: str,
        codes: Sequence[DiagnosisCode],
        department: str = "中医内科",
        practitioner: str = "王医生",
        finished: bool = True,
        elsewhere: bool = False,
    ) -> str:
        """One offline encounter with one diagnosis; `elsewhere` puts it at another hospital."""
        count = sum(1 for e in self._encounters if e.patient_ref == patient_ref)
        ref = f"Encounter/sb-{patient_ref.rsplit('/', 1)[-1]}-{count + 1}"
        self._put_encounter(
            patient_ref,
            ref,
            on,
            diagnosis_name,
            codes,
            department,
            practitioner,
            finished=finished,
            here=not elsewhere,
        )
        return ref

    async def add_document(
        self,
        *,
        patient_ref: str,
        title: str,
        on: date,
        content_type: str,
        size: int | None = None,
        sha1_hex: str | None = None,
    ) -> str:
        count = sum(1 for owner, _ in self._documents if owner == patient_ref)
        ref = f"DocumentReference/sb-{patient_ref.rsplit('/', 1)[-1]}-{count + 1}"
        attachment = EmrAttachment(content_type=content_type, title=title, size=size, sha1_hex=sha1_hex)
        self._put_document(patient_ref, ref, title, on, [], attachment)
        return ref

    # --- records ---------------------------------------------------------------------------------------------------

    def _add_demo(self, day: date) -> None:
        for demo in DEMOS:
            patient_ref = self._put_patient(f"Patient/{demo.username}", idcard.normalize(demo.id_card_no), demo.name)
            encounter_ref = f"Encounter/{demo.encounter_id}"
            codes = [
                DiagnosisCode(
                    kind=CodeKind.LOCAL, system=LOCAL_DISEASE_SYSTEM, code=demo.disease[0], display=demo.disease[1]
                ),
                DiagnosisCode(kind=CodeKind.ICD10, system=ICD10_SYSTEM, code=demo.icd10[0], display=demo.icd10[1]),
            ]
            self._put_encounter(
                patient_ref,
                encounter_ref,
                day,
                demo.disease[1],
                codes,
                demo.department,
                demo.doctor,
                finished=True,
                here=True,
            )
            record = f"{demo.encounter_id}:门诊病历".encode()
            attachment = EmrAttachment(
                content_type="application/pdf",
                title="门诊病历.pdf",
                size=len(record),
                sha1_hex=hashlib.sha1(record).hexdigest(),
                language="zh-CN",
            )
            self._put_document(
                patient_ref,
                f"DocumentReference/{demo.encounter_id}-record",
                "门诊病历",
                day,
                [encounter_ref],
                attachment,
            )

    def _put_patient(self, ref: str, number: str, name: str) -> str:
        known = self._patients.get(number)
        if known is not None:
            return known[1].ref
        record = EmrPatient(ref=ref, name=name.strip(), gender=idcard.sex(number), birth_date=idcard.birth_date(number))
        self._patients[number] = (normalize_name(name), record)
        return ref

    def _put_encounter(
        self,
        patient_ref: str,
        ref: str,
        on: date,
        name: str,
        codes: Sequence[DiagnosisCode],
        department: str,
        practitioner: str,
        *,
        finished: bool,
        here: bool,
    ) -> None:
        diagnosis = EmrDiagnosis(
            encounter_ref=ref,
            condition_ref=f"Condition/{ref.rsplit('/', 1)[-1]}-1",
            name=name,
            codes=list(codes),
            setting=EncounterSetting.AMBULATORY,
            diagnosed_at=datetime.combine(on, _VISIT_TIME, HOSPITAL_TZ),
            department=department,
            practitioner=practitioner,
        )
        self._encounters.append(_Encounter(patient_ref=patient_ref, finished=finished, here=here, diagnosis=diagnosis))

    def _put_document(
        self, patient_ref: str, ref: str, title: str, on: date, encounter_refs: list[str], attachment: EmrAttachment
    ) -> None:
        document = EmrDocument(
            ref=ref,
            title=title,
            created_at=datetime.combine(on, _FILED_TIME, HOSPITAL_TZ),
            encounter_refs=encounter_refs,
            attachments=[attachment],
        )
        self._documents.append((patient_ref, document))
