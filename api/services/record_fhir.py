"""The medical record as a FHIR R4B document Bundle (8.2.5), for patients and for other hospitals' systems.

Shape of the document:
- Composition first (type LOINC 34108-1 Outpatient note: the record of an outpatient 复诊 visit written by the
  treating doctor; 11488-4 Consult note would claim a consultation requested by another clinician), then Patient,
  Practitioner, Organization (the hospital), Encounter (class VR), the diagnoses as Conditions and the prescribed
  herbs as MedicationRequests.
- Each TCM prescription (方) becomes one MedicationRequest per herb, grouped by `groupIdentifier` = the
  prescription id, which is how R4 expresses a multi-line prescription; the herb is `medicationCodeableConcept.text`,
  the grams per 剂 and the decoction method (煎法) are the dosage, the 剂数 is `dispenseRequest.quantity`.
- A signed record has a legal attester and `Bundle.signature`. The SM2 signature is over the record's SM3 digest
  (`models.record.record_digest`), not over the Bundle's bytes, and a raw DER SM2 signature has no registered media
  type, so `sigFormat` is application/octet-stream and the `sm2-signature` extension carries what verifies it:
  algorithm, key id, public key, the signed digest and the RFC 3161 token over the signature.
- Addenda are sections under a 「补充记录」 section: they belong to this visit's record, and each keeps its own
  signature (ASTM addendum signature) in a `section-signature` extension, since a Bundle holds only one.

Every id is a UUIDv5 of the visit id and the resource's role, and nothing depends on the export's clock, so
exporting the same record twice gives the same document.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.composition import Composition, CompositionAttester, CompositionSection
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.dosage import Dosage, DosageDoseAndRate
from fhir.resources.R4B.encounter import Encounter, EncounterDiagnosis, EncounterParticipant
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.humanname import HumanName
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.medicationrequest import MedicationRequest, MedicationRequestDispenseRequest
from fhir.resources.R4B.narrative import Narrative
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.period import Period
from fhir.resources.R4B.practitioner import Practitioner, PractitionerQualification
from fhir.resources.R4B.quantity import Quantity
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.signature import Signature

from activities.adapters.emr import ICD10_SYSTEM, TCM_DISEASE_SYSTEM, TCM_SYNDROME_SYSTEM
from models.common import HOSPITAL_TZ
from models.record import RecordAddendum, RecordDocument, RecordPrescription
from models.signature import SignatureRecord

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ASTM_SIGNATURE_TYPE = "urn:iso-astm:E1762-95:2013"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
# RFC 3986 URIs as identifier values: how a document Bundle names itself without a registry of its own.
URI_IDENTIFIER = "urn:ietf:rfc:3986"

# Our own ids, as identifier systems.
PATIENT_ID_SYSTEM = "https://qihuang.org/fhir/NamingSystem/patient-id"
PRACTITIONER_ID_SYSTEM = "https://qihuang.org/fhir/NamingSystem/practitioner-id"
VISIT_ID_SYSTEM = "https://qihuang.org/fhir/NamingSystem/visit-id"
PRESCRIPTION_ID_SYSTEM = "https://qihuang.org/fhir/NamingSystem/prescription-id"
SM2_SIGNATURE_EXTENSION = "https://qihuang.org/fhir/StructureDefinition/sm2-signature"
SECTION_SIGNATURE_EXTENSION = "https://qihuang.org/fhir/StructureDefinition/section-signature"

OUTPATIENT_NOTE = ("34108-1", "Outpatient Note")
AUTHOR_SIGNATURE = ("1.2.840.10065.1.12.1.1", "Author's Signature")
ADDENDUM_SIGNATURE = ("1.2.840.10065.1.12.1.15", "Addendum Signature")

# Fixed forever: changing it changes every exported id.
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://qihuang.org/fhir/record-export")
_XHTML = "http://www.w3.org/1999/xhtml"


def record_bundle(doc: RecordDocument) -> dict[str, Any]:
    ids = _Ids(doc.visit_id)
    conditions = _conditions(doc, ids)
    requests = [request for rx in doc.prescriptions for request in _medication_requests(doc, ids, rx)]
    composition = _composition(doc, ids, conditions, requests)
    resources: list[Resource] = [
        composition,
        _patient(doc, ids),
        _practitioner(doc, ids),
        Organization(id=ids.id("Organization"), name=doc.hospital_name),
        _encounter(doc, ids, conditions),
        *conditions,
        *requests,
    ]
    bundle = Bundle(
        id=ids.id("Bundle"),
        identifier=Identifier(system=URI_IDENTIFIER, value=ids.urn("Bundle")),
        type="document",
        timestamp=_document_time(doc),
        entry=[BundleEntry(fullUrl=f"urn:uuid:{resource.id}", resource=resource) for resource in resources],
        signature=_signature(doc, ids, doc.signature, AUTHOR_SIGNATURE) if doc.signature else None,
    )
    return bundle.model_dump(mode="json", exclude_none=True)


class _Ids:
    """Stable UUIDs for the resources of one visit's document."""

    def __init__(self, visit_id: str) -> None:
        self._visit_id = visit_id

    def id(self, *role: str) -> str:
        # JSON keeps the parts apart, whatever characters the ids contain.
        return str(uuid.uuid5(_ID_NAMESPACE, json.dumps([self._visit_id, *role], ensure_ascii=False)))

    def urn(self, *role: str) -> str:
        return f"urn:uuid:{self.id(*role)}"

    def ref(self, *role: str) -> Reference:
        return Reference(reference=self.urn(*role))


def _local(moment: datetime) -> datetime:
    return moment.astimezone(HOSPITAL_TZ)


def _document_time(doc: RecordDocument) -> datetime:
    """The time of the document's newest content, not of the export, so that re-exports are identical."""
    moments = [doc.visited_at, *(a.written_at for a in doc.addenda)]
    if doc.signature is not None:
        moments.append(doc.signature.signed_at)
    return _local(max(moments))


def _coding(system: str, code: str, display: str | None = None) -> Coding:
    return Coding(system=system, code=code, display=display)


def _concept(system: str, code: str, display: str | None = None) -> CodeableConcept:
    return CodeableConcept(coding=[_coding(system, code, display)])


def _doctor_ref(doc: RecordDocument, ids: _Ids, doctor_id: str) -> Reference:
    """The record's doctor as the Practitioner in the Bundle; anyone else (a colleague's addendum) by identifier."""
    if doctor_id == doc.doctor.id:
        return ids.ref("Practitioner")
    return Reference(identifier=Identifier(system=PRACTITIONER_ID_SYSTEM, value=doctor_id))


def _patient(doc: RecordDocument, ids: _Ids) -> Patient:
    patient = doc.patient
    return Patient(
        id=ids.id("Patient"),
        identifier=[Identifier(system=PATIENT_ID_SYSTEM, value=patient.id)],
        name=[HumanName(text=patient.name)],
        gender=patient.sex if patient.sex in ("male", "female") else "unknown",
        birthDate=patient.birth_date,
    )


def _practitioner(doc: RecordDocument, ids: _Ids) -> Practitioner:
    doctor = doc.doctor
    return Practitioner(
        id=ids.id("Practitioner"),
        identifier=[Identifier(system=PRACTITIONER_ID_SYSTEM, value=doctor.id)],
        name=[HumanName(text=doctor.name)],
        qualification=[PractitionerQualification(code=CodeableConcept(text=doctor.title))] if doctor.title else None,
    )


def _encounter(doc: RecordDocument, ids: _Ids, conditions: list[Condition]) -> Encounter:
    return Encounter(
        id=ids.id("Encounter"),
        identifier=[Identifier(system=VISIT_ID_SYSTEM, value=doc.visit_id)],
        status="finished",
        class_fhir=_coding(ACT_CODE, "VR", "virtual"),
        serviceType=CodeableConcept(text=doc.department),
        subject=ids.ref("Patient"),
        participant=[EncounterParticipant(individual=ids.ref("Practitioner"))],
        period=Period(start=_local(doc.visited_at)),
        diagnosis=[
            EncounterDiagnosis(condition=Reference(reference=f"urn:uuid:{condition.id}"), rank=rank)
            for rank, condition in enumerate(conditions, start=1)
        ],
        serviceProvider=ids.ref("Organization"),
    )


def _conditions(doc: RecordDocument, ids: _Ids) -> list[Condition]:
    """病名, 证候 and, when given, the western diagnosis, in the order the record states them."""
    record = doc.record
    diagnoses = [
        ("tcm-disease", TCM_DISEASE_SYSTEM, record.tcm_disease, record.tcm_disease_code),
        ("tcm-syndrome", TCM_SYNDROME_SYSTEM, record.tcm_syndrome, record.tcm_syndrome_code),
    ]
    if record.western_diagnosis.strip():
        diagnoses.append(("western", ICD10_SYSTEM, record.western_diagnosis, record.western_diagnosis_code))
    # A draft's diagnoses are still the doctor's working ones.
    verification = "confirmed" if doc.signature is not None else "provisional"
    return [
        Condition(
            id=ids.id("Condition", role),
            clinicalStatus=_concept(CONDITION_CLINICAL, "active"),
            verificationStatus=_concept(CONDITION_VERIFICATION, verification),
            category=[_concept(CONDITION_CATEGORY, "encounter-diagnosis", "Encounter Diagnosis")],
            code=CodeableConcept(coding=[_coding(system, code, name)] if code else None, text=name),
            subject=ids.ref("Patient"),
            encounter=ids.ref("Encounter"),
            recordedDate=_local(doc.visited_at),
            recorder=ids.ref("Practitioner"),
        )
        for role, system, name, code in diagnoses
    ]


def _medication_requests(doc: RecordDocument, ids: _Ids, rx: RecordPrescription) -> list[MedicationRequest]:
    return [
        MedicationRequest(
            id=ids.id("MedicationRequest", rx.prescription_id, str(line)),
            groupIdentifier=Identifier(system=PRESCRIPTION_ID_SYSTEM, value=rx.prescription_id),
            # The record cites what was prescribed; whether it was since paid, dispensed or voided it does not say.
            status="unknown",
            intent="order",
            medicationCodeableConcept=CodeableConcept(text=item.herb),
            subject=ids.ref("Patient"),
            encounter=ids.ref("Encounter"),
            authoredOn=_local(doc.visited_at),
            requester=ids.ref("Practitioner"),
            dosageInstruction=[
                Dosage(
                    text=f"每剂 {item.dose_g:g} g" + (f"，{item.decoction}" if item.decoction else ""),
                    patientInstruction=rx.usage,
                    doseAndRate=[
                        DosageDoseAndRate(doseQuantity=Quantity(value=item.dose_g, unit="g", system=UCUM, code="g"))
                    ],
                )
            ],
            # 剂 is no UCUM unit, so the quantity is a count with a human-readable unit only.
            dispenseRequest=MedicationRequestDispenseRequest(quantity=Quantity(value=rx.doses, unit="剂")),
        )
        for line, item in enumerate(rx.items, start=1)
    ]


def _xhtml(*paragraphs: str) -> Narrative:
    """Plain text as a narrative: each line one escaped paragraph."""
    body = "".join(f"<p>{escape(line)}</p>" for text in paragraphs for line in text.splitlines() if line.strip())
    return _narrative(body)


def _narrative(body: str) -> Narrative:
    return Narrative(status="generated", div=f'<div xmlns="{_XHTML}">{body}</div>')


def _section(title: str, text: str, loinc: tuple[str, str] | None = None) -> CompositionSection:
    return CompositionSection(
        title=title,
        code=_concept(LOINC, *loinc) if loinc else None,
        text=_xhtml(text),
    )


def _coded(name: str, code: str | None) -> str:
    return name + (f"（{code}）" if code else "")


def _composition(
    doc: RecordDocument, ids: _Ids, conditions: list[Condition], requests: list[MedicationRequest]
) -> Composition:
    record = doc.record
    signed = doc.signature
    if signed is None:
        status = "preliminary"
    else:
        status = "amended" if doc.addenda else "final"
    # Optional parts the doctor left empty are left out; what the record does not say, the document does not either.
    narrative = [
        ("主诉", record.chief_complaint, ("10154-3", "Chief complaint Narrative - Reported")),
        ("现病史", record.present_illness, ("10164-2", "History of Present illness Narrative")),
        ("既往史", record.past_history, ("11348-0", "History of Past illness Narrative")),
        ("过敏史", record.allergy_history, ("48765-2", "Allergies and adverse reactions Document")),
    ]
    sections = [_section(title, text, loinc) for title, text, loinc in narrative if text.strip()]
    sections += [
        _examination(record.physical_exam, record.tongue, record.pulse),
        _diagnoses(doc, conditions),
        _section("治法", record.treatment_principle, ("18776-5", "Plan of care note")),
        _medications(doc.prescriptions, requests),
    ]
    if record.orders.strip():
        sections.append(_section("医嘱", record.orders, ("69730-0", "Instructions")))
    if doc.addenda:
        sections.append(_addenda(doc, ids))
    return Composition(
        id=ids.id("Composition"),
        language="zh-CN",
        identifier=Identifier(system=URI_IDENTIFIER, value=ids.urn("Composition")),
        status=status,
        type=_concept(LOINC, *OUTPATIENT_NOTE),
        subject=ids.ref("Patient"),
        encounter=ids.ref("Encounter"),
        date=_document_time(doc),
        author=[ids.ref("Practitioner")],
        title="互联网医院 门诊病历（复诊）",
        attester=[
            CompositionAttester(
                mode="legal", time=_local(signed.signed_at), party=_doctor_ref(doc, ids, signed.signer_id)
            )
        ]
        if signed
        else None,
        custodian=ids.ref("Organization"),
        section=sections,
    )


def _examination(physical_exam: str, tongue: str, pulse: str) -> CompositionSection:
    """体格检查 with 舌象 and 脉象, the TCM inspection and palpation findings, as its subsections."""
    return CompositionSection(
        title="体格检查",
        code=_concept(LOINC, "29545-1", "Physical findings Narrative"),
        text=_xhtml(physical_exam) if physical_exam.strip() else None,
        section=[_section("舌象", tongue), _section("脉象", pulse)],
    )


def _diagnoses(doc: RecordDocument, conditions: list[Condition]) -> CompositionSection:
    record = doc.record
    lines = [
        f"中医诊断：病名 {_coded(record.tcm_disease, record.tcm_disease_code)}；"
        f"证候 {_coded(record.tcm_syndrome, record.tcm_syndrome_code)}"
    ]
    if record.western_diagnosis.strip():
        lines.append(f"西医诊断：{_coded(record.western_diagnosis, record.western_diagnosis_code)}")
    return CompositionSection(
        title="诊断",
        code=_concept(LOINC, "51848-0", "Evaluation note"),
        text=_xhtml(*lines),
        entry=[Reference(reference=f"urn:uuid:{condition.id}") for condition in conditions],
    )


def _medications(prescriptions: list[RecordPrescription], requests: list[MedicationRequest]) -> CompositionSection:
    code = _concept(LOINC, "10160-0", "History of Medication use Narrative")
    if not prescriptions:
        return CompositionSection(title="方药", code=code, text=_xhtml("本次就诊未开具处方"))
    tables = []
    for number, rx in enumerate(prescriptions, start=1):
        rows = "".join(
            f"<tr><td>{escape(item.herb)}</td><td>{item.dose_g:g}</td><td>{escape(item.decoction or '')}</td></tr>"
            for item in rx.items
        )
        tables.append(
            f"<p>处方 {number}（处方号：{escape(rx.prescription_id)}）</p>"
            "<table><thead><tr><th>药名</th><th>用量（g）</th><th>煎法</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            f"<p>共 {rx.doses} 剂；用法：{escape(rx.usage)}</p>"
        )
    return CompositionSection(
        title="方药",
        code=code,
        text=_narrative("".join(tables)),
        entry=[Reference(reference=f"urn:uuid:{request.id}") for request in requests],
    )


def _addenda(doc: RecordDocument, ids: _Ids) -> CompositionSection:
    return CompositionSection(
        title="补充记录",
        section=[_addendum(doc, ids, number, addendum) for number, addendum in enumerate(doc.addenda, start=1)],
    )


def _addendum(doc: RecordDocument, ids: _Ids, number: int, addendum: RecordAddendum) -> CompositionSection:
    written = _local(addendum.written_at).strftime("%Y-%m-%d %H:%M")
    state = "已电子签名" if addendum.signature is not None else "未签名"
    return CompositionSection(
        title=f"补充记录 {number}（{written}）",
        author=[_doctor_ref(doc, ids, addendum.doctor_id)],
        text=_xhtml(addendum.text, state),
        extension=[
            Extension(
                url=SECTION_SIGNATURE_EXTENSION,
                valueSignature=_signature(doc, ids, addendum.signature, ADDENDUM_SIGNATURE),
            )
        ]
        if addendum.signature
        else None,
    )


def _signature(doc: RecordDocument, ids: _Ids, record: SignatureRecord, kind: tuple[str, str]) -> Signature:
    """A FHIR Signature carrying our SM2 signature; records signed before SM2 carry their digest alone."""
    details = [Extension(url="digest", valueString=record.digest)]
    electronic = record.signature
    if electronic is not None:
        details += [
            Extension(url="algorithm", valueString=electronic.algorithm),
            Extension(url="keyId", valueString=electronic.key_id),
            Extension(url="publicKey", valueString=electronic.public_key_pem),
            Extension(url="distinguishingId", valueString=electronic.distinguishing_id),
        ]
    token = record.timestamp
    if token is not None:
        details += [
            Extension(url="timestampToken", valueBase64Binary=base64.b64encode(token.der).decode()),
            Extension(url="timestampTime", valueInstant=_local(token.gen_time)),
            Extension(url="timestampAuthority", valueString=token.tsa),
        ]
    return Signature(
        extension=[Extension(url=SM2_SIGNATURE_EXTENSION, extension=details)],
        type=[_coding(ASTM_SIGNATURE_TYPE, *kind)],
        when=_local(record.signed_at),
        who=_doctor_ref(doc, ids, record.signer_id),
        sigFormat="application/octet-stream" if electronic else None,
        data=electronic.signature_b64 if electronic else None,
    )
