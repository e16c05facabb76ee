"""The hospital's EMR (电子病历): whose record a patient is, their offline diagnoses and their documents.

The revisit check (8.1.2) asks it whether a disease was diagnosed at an offline visit of this hospital within the
window; the doctor's preview lists the documents. Windows are calendar days of the hospital (`models.common.HOSPITAL_TZ`).

Diagnosis code systems. ICD-10 has an HL7-registered URI; China's health-information standards (WS 364, the
WS/T 500 shared documents) name ICD-10 and GB/T 15657《中医病证分类与代码》 by OID, but use the one GB/T 15657 OID
for 病名 and 证候 alike, so a code under it cannot tell which it is. We therefore define one canonical URI per part
(`TCM_DISEASE_SYSTEM`, `TCM_SYNDROME_SYSTEM`) and read the national OID as 病名, the part 8.1.2 matches on.
Adapters map whatever URIs their peer uses onto `CodeKind`s; these are only the defaults.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import Protocol, runtime_checkable

from models.emr import CodeKind, EmrDiagnosis, EmrDocument, EmrPatient

ICD10_SYSTEM = "http://hl7.org/fhir/sid/icd-10"
ICD10_CN_OID_SYSTEM = "urn:oid:2.16.156.10011.2.3.3.11"
GBT15657_OID_SYSTEM = "urn:oid:2.16.156.10011.2.3.3.14"
TCM_DISEASE_SYSTEM = "https://qihuang.org/fhir/CodeSystem/gbt15657-disease"
TCM_SYNDROME_SYSTEM = "https://qihuang.org/fhir/CodeSystem/gbt15657-syndrome"
# The hospital's own diagnosis catalogue: the codes of our `diseases` table (e.g. TCM-PW-001).
LOCAL_DISEASE_SYSTEM = "https://qihuang.org/fhir/CodeSystem/disease-catalogue"

DEFAULT_CODE_SYSTEMS: dict[str, CodeKind] = {
    ICD10_SYSTEM: CodeKind.ICD10,
    ICD10_CN_OID_SYSTEM: CodeKind.ICD10,
    GBT15657_OID_SYSTEM: CodeKind.TCM_DISEASE,
    TCM_DISEASE_SYSTEM: CodeKind.TCM_DISEASE,
    TCM_SYNDROME_SYSTEM: CodeKind.TCM_SYNDROME,
    LOCAL_DISEASE_SYSTEM: CodeKind.LOCAL,
}

# Ways the middle dot in names such as 买买提·艾力 gets typed.
_MIDDLE_DOTS = str.maketrans(dict.fromkeys("•・‧∙⋅", "·"))


def normalize_name(name: str) -> str:
    """A name as compared for identity: full-width forms folded, whitespace dropped, one middle dot."""
    folded = unicodedata.normalize("NFKC", name).translate(_MIDDLE_DOTS)
    return "".join(folded.split())


@runtime_checkable
class Emr(Protocol):
    name: str

    async def find_patient(self, *, id_card_no: str, name: str) -> EmrPatient | None:
        """The record of this person: ID-card number AND name must both match, else None."""
        ...

    async def offline_diagnoses(self, *, patient_ref: str, since: date) -> list[EmrDiagnosis]:
        """Diagnoses of the patient's finished offline encounters at this hospital on or after `since`, newest
        first."""
        ...

    async def documents(self, *, patient_ref: str, since: date) -> list[EmrDocument]:
        """The patient's current documents dated on or after `since`, newest first."""
        ...
