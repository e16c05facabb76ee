"""Downloading a medical record (8.2.5): the A4 PDF and the FHIR R4B document Bundle, signed and as a draft.

Pure: the records are built here and signed with the sandbox signer and TSA, which need no database."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from fhir.resources.R4B.bundle import Bundle
from pypdf import PdfReader

from activities.adapters.emr import ICD10_SYSTEM, TCM_DISEASE_SYSTEM, TCM_SYNDROME_SYSTEM
from activities.adapters.signer.sandbox import SandboxSigner
from activities.adapters.tsa.sandbox import SandboxTsa
from activities.signatures import Signatures
from api.services.record_fhir import SECTION_SIGNATURE_EXTENSION, SM2_SIGNATURE_EXTENSION, record_bundle
from api.services.record_pdf import render_record_pdf
from core.ledger.service import EvidenceLedger
from core.settings import Settings
from models.prescription import RxItem
from models.record import (
    RecordAddendum,
    RecordDoctor,
    RecordDocument,
    RecordPatient,
    RecordPrescription,
    addendum_digest,
    record_digest,
)
from models.visit import TcmRecord

VISITED_AT = datetime(2025, 3, 4, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
MARKUP = "<b>&"
# Long enough to push the record onto a second page; a doctor's pasted text may look like markup.
PRESENT_ILLNESS = (
    "患者三月前因饮食不节出现胃脘胀痛，食后尤甚，伴嗳气反酸，情志不舒时加重，"
    "曾自服奥美拉唑，症状稍减，停药后反复。近一周胀痛加重，纳差，夜寐欠安，大便溏薄，日二至三行。"
    * 24
    + f"患者自述曾见化验单写有“{MARKUP}”字样。"
)
HEADINGS = [
    "主诉",
    "现病史",
    "既往史",
    "过敏史",
    "体格检查",
    "舌象",
    "脉象",
    "中医诊断",
    "西医诊断",
    "治法",
    "方药",
    "医嘱",
]


def _record() -> TcmRecord:
    return TcmRecord(
        chief_complaint="胃脘胀痛反复发作3月，加重1周",
        present_illness=PRESENT_ILLNESS,
        past_history="既往体健，否认肝炎、结核病史。",
        allergy_history="否认药物及食物过敏史。",
        physical_exam="神清，精神可，面色少华，腹软，剑突下轻压痛，无反跳痛。",
        tongue="舌淡红，苔薄白",
        pulse="脉弦细",
        tcm_disease="胃脘痛",
        tcm_disease_code="A17.02",
        tcm_syndrome="肝胃不和证",
        tcm_syndrome_code="B04.03.02.01",
        western_diagnosis="慢性非萎缩性胃炎",
        western_diagnosis_code="K29.500",
        treatment_principle="疏肝理气，和胃止痛",
        orders="忌食生冷辛辣，调畅情志；服药一周后复诊。",
    )


def _document(**changes: Any) -> RecordDocument:
    doc = RecordDocument(
        visit_id="v-20250304-0007",
        hospital_name="岐黄中医院",
        department="脾胃病科",
        patient=RecordPatient(id="p-1", name="王小明", sex="male", birth_date=date(1980, 6, 15)),
        doctor=RecordDoctor(id="d-1", name="李时珍", title="主任医师"),
        visited_at=VISITED_AT,
        record=_record(),
        prescriptions=[
            RecordPrescription(
                prescription_id="rx-1",
                items=[
                    RxItem(herb="柴胡", dose_g=10),
                    RxItem(herb="白芍", dose_g=12),
                    RxItem(herb="枳壳", dose_g=9),
                    RxItem(herb="煅瓦楞子", dose_g=30, decoction="先煎"),
                    RxItem(herb="砂仁", dose_g=4.5, decoction="后下"),
                    RxItem(herb="炙甘草", dose_g=6),
                ],
                doses=7,
                usage="水煎服，每日一剂，早晚分服",
            )
        ],
    )
    return doc.model_copy(update=changes)


@pytest_asyncio.fixture(scope="module")
async def signed(sessions, settings: Settings) -> RecordDocument:
    """The draft signed the way the visit flow signs it, with one signed and one unsigned addendum."""
    signatures = Signatures(SandboxSigner(sessions, settings), SandboxTsa(sessions, settings), EvidenceLedger(sessions))
    draft = _document()
    signed_at = VISITED_AT + timedelta(minutes=25)
    digest = record_digest(draft.visit_id, "d-1", draft.record.model_dump(mode="json"), signed_at)
    signature = await signatures.sign("d-1", digest, signed_at, None, kind="record.signed", subject="visit:v-1")
    written_at = VISITED_AT + timedelta(days=1)
    text = "补充：患者诉近两日夜寐欠安。"
    addendum_signature = await signatures.sign(
        "d-1",
        addendum_digest(draft.visit_id, "d-1", text, written_at, digest),
        written_at,
        None,
        kind="record.addendum",
        subject="visit:v-1",
    )
    addenda = [
        RecordAddendum(text=text, written_at=written_at, doctor_id="d-1", signature=addendum_signature),
        RecordAddendum(text="补充：复查胃镜预约中。", written_at=written_at + timedelta(hours=2), doctor_id="d-2"),
    ]
    return draft.model_copy(update={"signature": signature, "addenda": addenda})


def _pdf_text(pdf: bytes) -> tuple[int, str]:
    """Page count and the extracted text with all whitespace removed (line wrapping may split any word)."""
    reader = PdfReader(io.BytesIO(pdf))
    text = "".join(page.extract_text() for page in reader.pages)
    return len(reader.pages), "".join(text.split())


# --- PDF ----------------------------------------------------------------------------------------------------------


def test_a_draft_pdf_has_every_section_and_says_it_is_unsigned() -> None:
    pages, text = _pdf_text(render_record_pdf(_document()))
    assert pages >= 2
    positions = [text.index(heading + "：") for heading in HEADINGS]
    assert positions == sorted(positions), "sections in the order of 《中医病历书写基本规范》"
    for expected in (
        "岐黄中医院",
        "互联网医院门诊病历（复诊）",
        "王小明",
        "性别：男",
        "年龄：44岁",
        "就诊时间：2025-03-0409:30",
        "病名胃脘痛（A17.02）；证候肝胃不和证（B04.03.02.01）",
        "慢性非萎缩性胃炎（K29.500）",
        "煅瓦楞子",
        "先煎",
        "4.5",
        "共7剂",
        "未签名（草稿）",
        MARKUP,
        f"第1页共{pages}页",
        f"第{pages}页共{pages}页",
        "就诊号：v-20250304-0007",
    ):
        assert expected in text, expected


def test_a_signed_pdf_shows_signature_timestamp_and_addenda(signed: RecordDocument) -> None:
    assert signed.signature is not None and signed.signature.signature is not None
    _, text = _pdf_text(render_record_pdf(signed))
    assert "未签名（草稿）" not in text
    assert "电子签名：SM2" in text and signed.signature.signature.key_id in text
    assert "可信时间戳" in text and signed.signature.digest[:16] in text
    assert "补充记录1" in text and "夜寐欠安" in text
    # The second addendum has no signature, and was written by a colleague.
    assert text.index("补充记录2") < text.rindex("未签名") and "医师d-2" in text


def test_the_same_record_gives_the_same_bytes(signed: RecordDocument) -> None:
    assert render_record_pdf(signed) == render_record_pdf(signed)
    assert render_record_pdf(_document()) == render_record_pdf(_document())


def test_an_empty_optional_field_reads_not_recorded() -> None:
    record = _record().model_copy(update={"past_history": "", "western_diagnosis": "", "western_diagnosis_code": None})
    _, text = _pdf_text(render_record_pdf(_document(record=record, prescriptions=[])))
    assert "既往史：（未记录）" in text and "西医诊断：（未记录）" in text
    assert "本次就诊未开具处方" in text


# --- FHIR ---------------------------------------------------------------------------------------------------------


def _resources(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type]


def _references(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return found + [ref for item in value.values() for ref in _references(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in _references(item)]
    return []


def test_a_draft_bundle_is_a_valid_document() -> None:
    bundle = record_bundle(_document())
    # Validates as R4B, and reads back unchanged.
    assert Bundle.model_validate(bundle).model_dump(mode="json") == bundle
    assert bundle["type"] == "document" and "signature" not in bundle
    composition = bundle["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition" and composition["status"] == "preliminary"
    assert composition["type"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "34108-1",
        "display": "Outpatient Note",
    }
    assert "attester" not in composition
    # Every reference points into the Bundle.
    full_urls = {entry["fullUrl"] for entry in bundle["entry"]}
    assert len(full_urls) == len(bundle["entry"])
    assert all(url.startswith("urn:uuid:") for url in full_urls)
    assert set(_references(bundle)) <= full_urls
    encounter = _resources(bundle, "Encounter")[0]
    assert encounter["status"] == "finished" and encounter["class"]["code"] == "VR"


def test_sections_carry_loinc_codes_and_escaped_narrative() -> None:
    composition = record_bundle(_document())["entry"][0]["resource"]
    sections = {section["title"]: section for section in composition["section"]}
    codes = {title: section["code"]["coding"][0]["code"] for title, section in sections.items() if "code" in section}
    assert codes == {
        "主诉": "10154-3",
        "现病史": "10164-2",
        "既往史": "11348-0",
        "过敏史": "48765-2",
        "体格检查": "29545-1",
        "诊断": "51848-0",
        "治法": "18776-5",
        "方药": "10160-0",
        "医嘱": "69730-0",
    }
    # The narrative is well-formed XHTML whose text is the record's, markup-looking characters included.
    div = ET.fromstring(sections["现病史"]["text"]["div"])
    assert div.tag == "{http://www.w3.org/1999/xhtml}div"
    assert "".join(div.itertext()) == PRESENT_ILLNESS
    assert [sub["title"] for sub in sections["体格检查"]["section"]] == ["舌象", "脉象"]
    ET.fromstring(sections["方药"]["text"]["div"])


def test_diagnoses_and_herbs() -> None:
    bundle = record_bundle(_document())
    codings = [condition["code"]["coding"][0] for condition in _resources(bundle, "Condition")]
    assert [(c["system"], c["code"]) for c in codings] == [
        (TCM_DISEASE_SYSTEM, "A17.02"),
        (TCM_SYNDROME_SYSTEM, "B04.03.02.01"),
        (ICD10_SYSTEM, "K29.500"),
    ]
    requests = _resources(bundle, "MedicationRequest")
    assert [r["medicationCodeableConcept"]["text"] for r in requests] == [
        "柴胡",
        "白芍",
        "枳壳",
        "煅瓦楞子",
        "砂仁",
        "炙甘草",
    ]
    assert {r["groupIdentifier"]["value"] for r in requests} == {"rx-1"}
    decocted = requests[3]
    assert decocted["dosageInstruction"][0]["text"] == "每剂 30 g，先煎"
    assert decocted["dispenseRequest"]["quantity"] == {"value": 7, "unit": "剂"}


def test_a_signed_bundle_has_attester_and_signature(signed: RecordDocument) -> None:
    assert signed.signature is not None and signed.signature.signature is not None
    bundle = record_bundle(signed)
    Bundle.model_validate(bundle)
    composition = bundle["entry"][0]["resource"]
    assert composition["status"] == "amended"  # signed, then added to
    practitioner = "urn:uuid:" + _resources(bundle, "Practitioner")[0]["id"]
    (attester,) = composition["attester"]
    assert attester["mode"] == "legal" and attester["party"] == {"reference": practitioner}
    signature = bundle["signature"]
    assert signature["type"][0]["code"] == "1.2.840.10065.1.12.1.1"
    assert signature["who"] == {"reference": practitioner}
    assert signature["data"] == signed.signature.signature.signature_b64
    assert signature["sigFormat"] == "application/octet-stream"
    details = {ext["url"]: ext for ext in _extension(signature, SM2_SIGNATURE_EXTENSION)["extension"]}
    assert details["keyId"]["valueString"] == signed.signature.signature.key_id
    assert details["digest"]["valueString"] == signed.signature.digest
    assert {"timestampToken", "timestampTime", "timestampAuthority", "publicKey"} <= set(details)
    # Addenda: the signed one keeps its own signature, the colleague's unsigned one is referenced by identifier.
    first, second = next(s for s in composition["section"] if s["title"] == "补充记录")["section"]
    assert (
        _extension(first, SECTION_SIGNATURE_EXTENSION)["valueSignature"]["type"][0]["code"] == "1.2.840.10065.1.12.1.15"
    )
    assert "extension" not in second and second["author"][0]["identifier"]["value"] == "d-2"


def _extension(element: dict[str, Any], url: str) -> dict[str, Any]:
    return next(ext for ext in element["extension"] if ext["url"] == url)


def test_re_exports_are_identical(signed: RecordDocument) -> None:
    first, again = record_bundle(signed), record_bundle(signed.model_copy(deep=True))
    assert json.dumps(first, ensure_ascii=False) == json.dumps(again, ensure_ascii=False)
    # Ids depend on the visit: another visit's document shares none.
    other = record_bundle(_document(visit_id="v-other"))
    assert not {e["fullUrl"] for e in first["entry"]} & {e["fullUrl"] for e in other["entry"]}


@pytest.mark.parametrize("sex", [None, "female"])
def test_patient_gender(sex: str | None) -> None:
    patient = RecordPatient(id="p-2", name="张三", sex=sex)
    (resource,) = _resources(record_bundle(_document(patient=patient)), "Patient")
    assert resource["gender"] == (sex or "unknown") and "birthDate" not in resource
