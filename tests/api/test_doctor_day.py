"""The doctor's day over HTTP (8.2.1–8.2.3, 8.1.2.1 c): worklists, the audited preview before accepting, the guardian
of a child under six, consultants (会诊) in the chat, their signed opinions, invitations and prescriptions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime, timedelta

import pytest_asyncio
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col
from temporalio import activity
from temporalio.client import Client

from activities.adapters.registry import load_adapters
from activities.consultations import ConsultationActivities
from activities.signatures import Signatures
from api.identity import identity_columns
from core.crypto.sm import FieldCipher
from core.ledger.service import EvidenceLedger
from models import idcard
from models.common import Role
from models.consultation import GiveOpinion, InviteConsultant
from models.tables import (
    AuditEvent,
    MedicalRecord,
    Patient,
    RevisitEligibility,
    RevisitUpload,
    Visit,
    VisitConsultant,
    VisitGuardian,
)
from models.visit import AcceptVisit, VisitInput, VisitStage
from tests.api.consult_helpers import ConsultVisit, make_consult_visit
from tests.api.helpers import login, make_user, unique
from tests.api.test_consult import assert_problem
from tests.workflows.conftest import Harness
from tests.workflows.fakes import FakeWorld
from tests.workflows.test_prescription import DRAFT
from tests.workflows.test_visit import RECORD, book, pay, visit_input, wait_stage
from workers.worker import build_workers
from workflows.visit import VisitWorkflow


def cipher_of(settings) -> FieldCipher:  # type: ignore[no-untyped-def]
    return FieldCipher(settings.pii_key, settings.blind_index_key)


async def set_identity(sessions, settings, patient_id: str, name: str, born: date) -> str:  # type: ignore[no-untyped-def]
    number = idcard.make(born=born)
    columns = identity_columns(cipher_of(settings), name=name, id_card=number, phone="13800002222", address=None)
    async with sessions() as session, session.begin():
        await session.execute(update(Patient).where(col(Patient.id) == patient_id).values(**columns))
    return number


async def invite_row(sessions, visit_id: str, consultant: str, by: str) -> None:  # type: ignore[no-untyped-def]
    async with sessions() as session, session.begin():
        await session.execute(
            insert(VisitConsultant)
            .values(visit_id=visit_id, doctor_id=consultant, invited_by=by, reason="请协助辨证")
            .on_conflict_do_nothing()
        )


async def earlier_signed_record(sessions, consult: ConsultVisit) -> str:  # type: ignore[no-untyped-def]
    """A finished visit of the same patient a month ago, with another doctor's signed record."""
    _, other_doctor = await make_user(sessions, Role.DOCTOR, display_name="陈素琴")
    earlier = await make_consult_visit(sessions, stage="finished")
    async with sessions() as session, session.begin():
        await session.execute(
            update(Visit)
            .where(col(Visit.id) == earlier.visit_id)
            .values(
                patient_id=consult.patient_id, doctor_id=other_doctor, starts_at=datetime.now(UTC) - timedelta(days=30)
            )
        )
        session.add(
            MedicalRecord(
                visit_id=earlier.visit_id,
                patient_id=consult.patient_id,
                doctor_id=other_doctor,
                content=RECORD.model_dump(),
                digest="0" * 64,
                signature={"signer_id": other_doctor, "digest": "0" * 64, "signed_at": datetime.now(UTC).isoformat()},
                signed_at=datetime.now(UTC) - timedelta(days=30),
            )
        )
    return earlier.visit_id


async def test_worklists_split_by_stage_for_the_visits_doctor_and_its_consultants(api, sessions, settings) -> None:
    waiting = await make_consult_visit(sessions, stage="waiting_doctor")
    number = await set_identity(sessions, settings, waiting.patient_id, "欧阳明", date(1980, 3, 1))
    seeing = await make_consult_visit(sessions)
    finished = await make_consult_visit(sessions, stage="finished")
    aborted = await make_consult_visit(sessions, stage="aborted")
    # One doctor's worklist: their own waiting visit, one they were invited into, one finished, one aborted.
    async with sessions() as session, session.begin():
        for visit in (finished, aborted):
            await session.execute(
                update(Visit).where(col(Visit.id) == visit.visit_id).values(doctor_id=waiting.doctor_id)
            )
    await invite_row(sessions, seeing.visit_id, waiting.doctor_id, seeing.doctor_id)

    answer = await api.get("/api/v1/me/worklist", headers=await login(api, waiting.doctor_user))
    assert answer.status_code == 200, answer.text
    lists = answer.json()
    assert [(i["visit_id"], i["role"]) for i in lists["waiting"]] == [(waiting.visit_id, "attending")]
    age = date.today().year - 1980 - ((date.today().month, date.today().day) < (3, 1))
    assert lists["waiting"][0]["patient"] == {
        "patient_id": waiting.patient_id,
        "name_masked": "欧**",
        "sex": idcard.sex(number),
        "age": age,
    }
    assert [(i["visit_id"], i["role"]) for i in lists["in_consult"]] == [(seeing.visit_id, "consultant")]
    assert [i["visit_id"] for i in lists["finished"]] == [finished.visit_id]  # aborted ones are not 已完成

    # The invited visit is not on the inviting doctor's colleague's list, and patients have no worklist.
    stranger, _ = await make_user(sessions, Role.DOCTOR)
    others = (await api.get("/api/v1/me/worklist", headers=await login(api, stranger))).json()
    assert others == {"waiting": [], "in_consult": [], "finished": []}
    patient = await api.get("/api/v1/me/worklist", headers=await login(api, waiting.patient_user))
    assert_problem(patient, 403, "FORBIDDEN")


async def test_the_preview_shows_evidence_earlier_records_and_uploads_and_is_audited(api, sessions, settings) -> None:
    consult = await make_consult_visit(sessions, stage="waiting_doctor")
    await set_identity(sessions, settings, consult.patient_id, "张三", date(1980, 1, 1))
    earlier = await earlier_signed_record(sessions, consult)
    upload_id = unique("upl")
    async with sessions() as session, session.begin():
        disease = (await session.get(Visit, consult.visit_id)).disease_code  # type: ignore[union-attr]
        session.add(
            RevisitUpload(
                id=upload_id,
                patient_id=consult.patient_id,
                disease_code=disease,
                kind="image",
                content_type="image/png",
                size_bytes=4,
                sm3="a" * 64,
                data_enc=b"x",
                visited_on=date.today() - timedelta(days=40),
                status="approved",
            )
        )
        session.add(
            RevisitEligibility(
                patient_id=consult.patient_id,
                disease_code=disease,
                disease_name="胃脘痛",
                status="eligible",
                evidence=[
                    {
                        "encounter_id": f"upload:{upload_id}",
                        "disease_code": disease,
                        "disease_name": "胃脘痛",
                        "diagnosed_at": (datetime.now(UTC) - timedelta(days=40)).isoformat(),
                        "department": "",
                        "doctor_name": "",
                        "source": "upload",
                    }
                ],
                valid_until=datetime.now(UTC) + timedelta(days=80),
            )
        )
    doctor = await login(api, consult.doctor_user)
    answer = await api.get(f"/api/v1/visits/{consult.visit_id}/preview", headers=doctor)
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert preview["patient"]["name"] == "张三" and preview["patient"]["birth_date"] == "1980-01-01"
    assert (preview["role"], preview["child_under_six"], preview["warnings"]) == ("attending", False, [])
    assert preview["revisit"]["status"] == "eligible"
    assert preview["revisit"]["evidence"][0]["source"] == "upload"
    [record] = preview["earlier_records"]
    assert (record["visit_id"], record["doctor_name"], record["record"]["tcm_disease"]) == (earlier, "陈素琴", "胃痞病")
    assert [(u["upload_id"], u["status"]) for u in preview["uploads"]] == [(upload_id, "approved")]
    async with sessions() as session:
        audited = await session.scalar(
            select(col(AuditEvent.detail)).where(
                col(AuditEvent.action) == "visit_preview.read", col(AuditEvent.subject_id) == consult.visit_id
            )
        )
    assert audited == {"patient_id": consult.patient_id, "records": [earlier], "uploads": [upload_id]}

    # An invited doctor previews too; any other doctor finds nothing, and patients are refused.
    consultant_user, consultant = await make_user(sessions, Role.DOCTOR)
    assert consultant is not None
    stranger_user, _ = await make_user(sessions, Role.DOCTOR)
    path = f"/api/v1/visits/{consult.visit_id}/preview"
    assert_problem(await api.get(path, headers=await login(api, consultant_user)), 404, "NOT_FOUND")
    await invite_row(sessions, consult.visit_id, consultant, consult.doctor_id)
    invited = await api.get(path, headers=await login(api, consultant_user))
    assert invited.status_code == 200 and invited.json()["role"] == "consultant"
    assert_problem(await api.get(path, headers=await login(api, stranger_user)), 404, "NOT_FOUND")
    assert_problem(await api.get(path, headers=await login(api, consult.patient_user)), 403, "FORBIDDEN")


async def test_a_child_under_six_has_the_guardian_recorded_encrypted_and_read_back_masked(
    api, sessions, settings
) -> None:
    consult = await make_consult_visit(sessions)
    today = date.today()
    child_number = await set_identity(sessions, settings, consult.patient_id, "张小宝", date(today.year - 3, 1, 1))
    doctor = await login(api, consult.doctor_user)
    path = f"/api/v1/visits/{consult.visit_id}/guardian"
    preview = (await api.get(f"/api/v1/visits/{consult.visit_id}/preview", headers=doctor)).json()
    assert preview["child_under_six"] is True and preview["guardian_recorded"] is False
    assert "未满6周岁" in preview["warnings"][0]

    father = idcard.make(born=date(1988, 5, 1))
    body = {
        "guardian_name": "张建国",
        "guardian_id_card_no": father,
        "relationship": "父亲",
        "physician_name": "刘医生",
        "physician_licence_no": "110110000123456",
    }
    assert (
        await api.put(path, json={**body, "guardian_id_card_no": "110101198805010000"}, headers=doctor)
    ).status_code == 422
    assert_problem(
        await api.put(path, json={**body, "guardian_id_card_no": child_number}, headers=doctor),
        422,
        "GUARDIAN_IS_PATIENT",
    )
    teenager = idcard.make(born=date(today.year - 15, 1, 1))
    assert_problem(
        await api.put(path, json={**body, "guardian_id_card_no": teenager}, headers=doctor), 422, "GUARDIAN_NOT_ADULT"
    )
    assert_problem(await api.put(path, json=body, headers=await login(api, consult.patient_user)), 403, "FORBIDDEN")

    recorded = await api.put(path, json=body, headers=doctor)
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["guardian_id_card_masked"] == father[:3] + "*" * 11 + father[-4:]
    async with sessions() as session:
        row = await session.get(VisitGuardian, consult.visit_id)
    assert row is not None and "张建国" not in row.guardian_name_enc and father not in row.guardian_id_card_enc
    assert cipher_of(settings).decrypt("id_card", row.guardian_id_card_enc) == father

    # The patient's side (the guardian's own phone) sees it too; the read is audited; other patients find nothing.
    mine = await api.get(path, headers=await login(api, consult.patient_user))
    assert mine.status_code == 200 and mine.json()["guardian_name"] == "张建国"
    async with sessions() as session:
        reads = await session.scalar(
            select(col(AuditEvent.id)).where(
                col(AuditEvent.action) == "visit_guardian.read", col(AuditEvent.subject_id) == consult.visit_id
            )
        )
    assert reads is not None
    stranger, _ = await make_user(sessions, Role.PATIENT)
    assert_problem(await api.get(path, headers=await login(api, stranger)), 404, "NOT_FOUND")
    after = (await api.get(f"/api/v1/visits/{consult.visit_id}/preview", headers=doctor)).json()
    assert after["guardian_recorded"] is True


async def test_no_guardian_for_a_patient_of_six_or_after_the_consult(api, sessions, settings) -> None:
    adult = await make_consult_visit(sessions)
    await set_identity(sessions, settings, adult.patient_id, "李四", date(1985, 6, 15))
    body = {
        "guardian_name": "李某",
        "guardian_id_card_no": idcard.make(born=date(1960, 1, 1)),
        "relationship": "父亲",
        "physician_name": "刘医生",
        "physician_licence_no": "110110000123456",
    }
    answer = await api.put(
        f"/api/v1/visits/{adult.visit_id}/guardian", json=body, headers=await login(api, adult.doctor_user)
    )
    assert_problem(answer, 409, "GUARDIAN_NOT_REQUIRED")
    ended = await make_consult_visit(sessions, stage="finished")
    await set_identity(sessions, settings, ended.patient_id, "张小宝", date(date.today().year - 2, 1, 1))
    answer = await api.put(
        f"/api/v1/visits/{ended.visit_id}/guardian", json=body, headers=await login(api, ended.doctor_user)
    )
    assert_problem(answer, 409, "VISIT_NOT_OPEN")


async def test_an_invited_doctor_joins_the_chat_and_their_signed_opinion_is_checked(api, sessions, settings) -> None:
    consult = await make_consult_visit(sessions)
    consultant_user, consultant = await make_user(sessions, Role.DOCTOR, display_name="王清和")
    assert consultant is not None
    messages = f"/api/v1/visits/{consult.visit_id}/messages"
    consultant_auth = await login(api, consultant_user)
    assert_problem(await api.post(messages, json={"body": "您好"}, headers=consultant_auth), 404, "NOT_FOUND")

    await invite_row(sessions, consult.visit_id, consultant, consult.doctor_id)
    sent = await api.post(messages, json={"body": "我是会诊医生，请描述一下睡眠情况。"}, headers=consultant_auth)
    assert sent.status_code == 201, sent.text
    assert (sent.json()["sender_user_id"], sent.json()["sender_role"]) == (consultant_user, "doctor")
    history = (await api.get(messages, headers=await login(api, consult.patient_user))).json()
    assert history["items"][-1]["body"] == "我是会诊医生，请描述一下睡眠情况。"

    adapters = load_adapters(sessions, settings)
    steps = ConsultationActivities(sessions, Signatures(adapters.signer, adapters.tsa, EvidenceLedger(sessions)))
    visit = VisitInput.model_validate(
        {**visit_input().model_dump(), "visit_id": consult.visit_id, "patient_id": consult.patient_id}
    )
    await steps.sign_opinion(visit, GiveOpinion(doctor_id=consultant, opinion="证属心脾两虚，建议归脾汤加减。"))
    path = f"/api/v1/visits/{consult.visit_id}/consultants"
    [listed] = (await api.get(path, headers=await login(api, consult.patient_user))).json()
    assert (listed["name"], listed["opinion"], listed["signature_state"]) == (
        "王清和",
        "证属心脾两虚，建议归脾汤加减。",
        {"valid": True, "problem": None},
    )
    async with sessions() as session, session.begin():
        await session.execute(
            update(VisitConsultant)
            .where(col(VisitConsultant.visit_id) == consult.visit_id)
            .values(opinion="证属心脾两虚，建议天王补心丹。")
        )
    [tampered] = (await api.get(path, headers=await login(api, consult.doctor_user))).json()
    assert tampered["signature_state"] == {"valid": False, "problem": "会诊意见内容与签名时不一致"}


class InvitingWorld(FakeWorld):
    """Stores invitations as the real step does, so the invited doctor passes the API's access check."""

    def __init__(self, sessions) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self._sessions = sessions

    @activity.defn(name="record_invitation")
    async def record_invitation(self, visit: VisitInput, invite: InviteConsultant) -> None:
        self._seen()
        await invite_row(self._sessions, visit.visit_id, invite.consultant_id, invite.doctor_id)


@pytest_asyncio.fixture
async def harness(client: Client, sessions) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    world = InvitingWorld(sessions)
    queue = f"api-doctor-day-{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        for worker in build_workers(client, queue, world.activity_sets()):
            await stack.enter_async_context(worker)
        yield Harness(client=client, queue=queue, world=world)


async def test_invite_opinion_and_prescriptions_through_the_visit_flow(api, sessions, harness: Harness) -> None:
    consult = await make_consult_visit(sessions)
    consultant_user, consultant = await make_user(sessions, Role.DOCTOR)
    assert consultant is not None
    visit = visit_input().model_copy(
        update={"visit_id": consult.visit_id, "patient_id": consult.patient_id, "doctor_id": consult.doctor_id}
    )
    _, handle = await book(harness, visit, patient_id=consult.patient_id)
    await pay(harness, visit)
    await wait_stage(handle, VisitStage.WAITING_DOCTOR)
    await handle.execute_update(VisitWorkflow.accept, AcceptVisit(doctor_id=consult.doctor_id))
    doctor, invited = await login(api, consult.doctor_user), await login(api, consultant_user)
    base = f"/api/v1/visits/{consult.visit_id}"
    try:
        answer = await api.post(
            f"{base}/consultants", json={"consultant_id": consultant, "reason": "请会诊"}, headers=doctor
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["consultants"] == [consultant]
        again = await api.post(
            f"{base}/consultants", json={"consultant_id": consultant, "reason": "再请"}, headers=doctor
        )
        assert_problem(again, 409, "ALREADY_INVITED")
        # Only the visit's doctor invites; the invited doctor is refused by the flow.
        assert_problem(
            await api.post(f"{base}/consultants", json={"consultant_id": "doc-x", "reason": "x"}, headers=invited),
            403,
            "FORBIDDEN",
        )
        opinion = await api.post(f"{base}/opinions", json={"opinion": "同意目前辨证，建议加酸枣仁。"}, headers=invited)
        assert opinion.status_code == 200, opinion.text
        assert opinion.json()["opinions"] == [consultant]
        assert_problem(await api.post(f"{base}/opinions", json={"opinion": "x"}, headers=doctor), 403, "FORBIDDEN")

        prescribed = await api.post(f"{base}/prescriptions", json=DRAFT.model_dump(mode="json"), headers=invited)
        assert prescribed.status_code == 201, prescribed.text
        # A child under six without the guardian recorded gets no prescription, whoever writes it.
        harness.world.guardian_missing = True
        refused = await api.post(f"{base}/prescriptions", json=DRAFT.model_dump(mode="json"), headers=doctor)
        problem = assert_problem(refused, 409, "GUARDIAN_REQUIRED")
        assert "监护人" in problem["detail"] and "陪诊医师" in problem["detail"]
    finally:
        for rx_id in (await handle.query(VisitWorkflow.state)).prescription_ids:
            await harness.client.get_workflow_handle(f"rx-{rx_id}").terminate("test done")
        await handle.terminate("test done")
