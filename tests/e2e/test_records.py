"""The TCM medical record through the API: written during the consult, signed (SM2 + trusted timestamp) and locked,
corrected only by signed addenda, read by its patient and doctor only, every read audited."""

from __future__ import annotations

import io
import uuid

from fhir.resources.R4B.bundle import Bundle
from pypdf import PdfReader
from sqlalchemy import func, select, update
from sqlmodel import col

from models.tables import AuditEvent, MedicalRecord
from workers.journey import RECORD, Journey
from workers.seed import DEMO_HIS_DIAGNOSES, DEMO_IDENTITIES


async def in_consult(stack) -> tuple[Journey, str]:
    journey = Journey(stack.http)
    _, disease, doctor = DEMO_HIS_DIAGNOSES["demo-patient"]
    await journey.register_patient(DEMO_IDENTITIES["demo-patient"], disease)
    visit = await journey.book(await journey.free_slot(doctor, disease))
    await journey.pay(visit["bill_id"], "挂号费")
    await journey.visit_stage(visit["visit_id"], "waiting_doctor", journey.patient)
    await journey.call("POST", f"/visits/{visit['visit_id']}/accept", journey.doctor)
    return journey, visit["visit_id"]


async def problem(journey: Journey, method: str, path: str, user: str, **kwargs) -> tuple[int, str]:
    answer = await journey.http.request(method, f"/api/v1{path}", headers=await journey.login(user), **kwargs)
    return answer.status_code, answer.json().get("code")


async def test_a_signed_record_is_locked_verified_and_corrected_only_by_signed_addenda(make_stack) -> None:
    stack = await make_stack()
    journey, visit_id = await in_consult(stack)
    record_path = f"/visits/{visit_id}/record"

    assert await problem(journey, "POST", f"{record_path}/sign", journey.doctor) == (409, "RECORD_REQUIRED")
    await journey.call("PUT", record_path, journey.doctor, json=RECORD)
    unsigned = await journey.call("GET", record_path, journey.patient)
    assert (unsigned["signed"], unsigned["signature_state"]) == (False, None)
    assert await problem(journey, "POST", f"{record_path}/addenda", journey.doctor, json={"text": "补充"}) == (
        409,
        "RECORD_NOT_SIGNED",
    )
    assert await problem(journey, "POST", f"/visits/{visit_id}/finish", journey.doctor) == (409, "RECORD_NOT_SIGNED")

    signed = await journey.call("POST", f"{record_path}/sign", journey.doctor)
    assert signed["record_signed"] is True
    assert await problem(journey, "PUT", record_path, journey.doctor, json=RECORD) == (409, "RECORD_SIGNED")
    assert await problem(journey, "POST", f"{record_path}/sign", journey.doctor) == (409, "RECORD_SIGNED")

    key = str(uuid.uuid4())
    addendum = await journey.call(
        "POST",
        f"{record_path}/addenda",
        journey.doctor,
        expected=201,
        json={"text": "补充：患者诉近两日夜寐欠安。"},
        headers={"Idempotency-Key": key},
    )
    again = await journey.call(
        "POST",
        f"{record_path}/addenda",
        journey.doctor,
        expected=201,
        json={"text": "补充：患者诉近两日夜寐欠安。"},
        headers={"Idempotency-Key": key},
    )
    assert again == addendum and addendum["signature"]["timestamp"] is not None
    await journey.call("POST", f"/visits/{visit_id}/finish", journey.doctor)

    view = await journey.call("GET", record_path, journey.patient)
    assert view["signature_state"] == {"valid": True, "problem": None}
    assert view["addenda_states"] == [{"valid": True, "problem": None}]
    document = view["document"]
    assert document["record"]["chief_complaint"] == RECORD["chief_complaint"]
    assert document["patient"]["name"] == DEMO_IDENTITIES["demo-patient"]["name"]
    assert [rx["prescription_id"] for rx in document["prescriptions"]] == []
    # The patient downloads it (8.2.5): a PDF whose Chinese text is there, and a FHIR R4B document.
    pdf = await journey.http.get(f"/api/v1{record_path}.pdf", headers=await journey.login(journey.patient))
    assert pdf.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert DEMO_IDENTITIES["demo-patient"]["name"] in text and RECORD["tcm_disease"] in text and "补充记录" in text
    fhir = await journey.http.get(f"/api/v1{record_path}/fhir", headers=await journey.login(journey.patient))
    assert fhir.headers["content-type"].startswith("application/fhir+json")
    bundle = Bundle.model_validate(fhir.json())
    assert bundle.type == "document" and bundle.signature is not None
    listed = await journey.call("GET", "/records", journey.patient)
    # demo-patient's other visits in this run are listed too; theirs are not this patient's concern here.
    assert {r["visit_id"]: r["signed_at"] is not None for r in listed}[visit_id] is True
    assert all(r["patient_id"] == document["patient"]["id"] for r in listed)
    assert visit_id in {r["visit_id"] for r in await journey.call("GET", "/records", journey.doctor)}

    # Someone changes the stored record behind the system's back: the signature no longer covers it.
    async with stack.sessions() as session, session.begin():
        row = await session.get(MedicalRecord, visit_id)
        assert row is not None
        await session.execute(
            update(MedicalRecord)
            .where(col(MedicalRecord.visit_id) == visit_id)
            .values(content={**row.content, "chief_complaint": "改过的主诉"})
        )
    tampered = await journey.call("GET", record_path, journey.doctor)
    assert tampered["signature_state"] == {"valid": False, "problem": "病历内容与签名时不一致"}

    async with stack.sessions() as session:
        reads = (
            await session.execute(
                select(func.count()).where(
                    col(AuditEvent.action) == "medical_record.read", col(AuditEvent.subject_id) == visit_id
                )
            )
        ).scalar()
    assert reads == 5  # the patient before and after signing and both downloads, then the doctor


async def test_nobody_else_reads_the_record(make_stack) -> None:
    stack = await make_stack()
    journey, visit_id = await in_consult(stack)
    await journey.call("PUT", f"/visits/{visit_id}/record", journey.doctor, json=RECORD)
    other = Journey(stack.http, patient="demo-patient2", doctor="demo-doctor2")
    assert await problem(other, "GET", f"/visits/{visit_id}/record", other.patient) == (404, "NOT_FOUND")
    assert await problem(other, "GET", f"/visits/{visit_id}/record", other.doctor) == (404, "NOT_FOUND")
    assert visit_id not in {r["visit_id"] for r in await other.call("GET", "/records", other.patient)}
