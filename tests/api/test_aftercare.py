"""After payment and delivery, over the API with the real activities: the medication guidance (once paid, audited),
and an adverse reaction report from the delivered prescription through its flow to the pharmacist's answer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import select
from sqlmodel import col
from temporalio.client import Client

from activities.adapters.registry import load_adapters
from api.main import create_app
from core.crypto.sm import FieldCipher
from core.settings import Settings
from models.common import Role
from models.fulfilment import OWN_PHARMACY
from models.prescription import PrescriptionDraft, RxItem
from models.tables import AdverseReactionReport, AuditEvent, Fulfilment, Notification, Patient
from tests.api.consult_helpers import ConsultVisit, make_consult_visit, make_prescription
from tests.api.helpers import login, make_user
from tests.workflows.test_prescription import until
from workers.worker import build_activities, build_workers

DRAFT = PrescriptionDraft(
    diagnosis="胃痞病 脾虚湿阻证",
    items=[RxItem(herb="党参", dose_g=15), RxItem(herb="附子", dose_g=9), RxItem(herb="砂仁", dose_g=6)],
    doses=7,
    usage="水煎服，每日一剂，早晚饭后温服",
)
WOMAN_ID_CARD = "110101199003071281"  # born 1990-03-07, female (the second-last digit is even)


@pytest_asyncio.fixture
async def api(database_url: str, engine, sessions, client: Client) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """The API and workers with the real activities and sandbox adapters, on a queue of their own."""
    settings = Settings(database_url=database_url, task_queue=f"api-aftercare-{uuid.uuid4().hex[:8]}")  # type: ignore[call-arg]
    activities = build_activities(sessions, settings, load_adapters(sessions, settings))
    async with AsyncExitStack() as stack:
        for worker in build_workers(client, settings.task_queue, activities):
            await stack.enter_async_context(worker)
        app = create_app(settings, temporal_client=client)
        await stack.enter_async_context(app.router.lifespan_context(app))
        transport = httpx.ASGITransport(app=app)
        yield await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://testserver"))


async def _prescription(sessions, settings: Settings, stage: str, fulfilment: str | None = None, **extra: Any):  # type: ignore[no-untyped-def]
    visit = await make_consult_visit(sessions)
    rx_id = await make_prescription(sessions, visit, stage, DRAFT, pickup="hospital", **extra)
    cipher = FieldCipher(settings.pii_key, settings.blind_index_key)
    async with sessions() as session, session.begin():
        patient = await session.get(Patient, visit.patient_id)
        assert patient is not None
        patient.id_card_enc = cipher.encrypt("id_card", WOMAN_ID_CARD)
        if fulfilment is not None:
            session.add(
                Fulfilment(prescription_id=rx_id, patient_id=visit.patient_id, stage=fulfilment, pickup="hospital",
                           pharmacy_id=OWN_PHARMACY)
            )  # fmt: skip
    return visit, rx_id


async def _reads(sessions, rx_id: str, action: str) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        rows = await session.execute(
            select(col(AuditEvent.id)).where(col(AuditEvent.subject_id) == rx_id, col(AuditEvent.action) == action)
        )
        return len(rows.all())


async def test_guidance_is_shown_once_paid_to_the_patient_and_their_doctor_and_audited(api, sessions, settings) -> None:  # type: ignore[no-untyped-def]
    visit, unpaid = await _prescription(sessions, settings, "awaiting_payment")
    patient = await login(api, visit.patient_user)
    early = await api.get(f"/api/v1/prescriptions/{unpaid}/guidance", headers=patient)
    assert early.status_code == 409 and early.json()["code"] == "RX_NOT_PAID"

    visit, rx_id = await _prescription(sessions, settings, "fulfilling", decoction_service=False)
    patient = await login(api, visit.patient_user)
    answer = await api.get(f"/api/v1/prescriptions/{rx_id}/guidance", headers=patient)
    assert answer.status_code == 200, answer.text
    guide = answer.json()
    assert (guide["times_per_day"], guide["volume_per_time"], guide["days"]) == (2, "200～300毫升", 7)
    assert [(s["method"], s["herbs"]) for s in guide["decoction"]] == [("先煎", ["附子"]), ("后下", ["砂仁"])]
    kinds = {c["kind"] for c in guide["cautions"]}
    assert {"pregnancy_caution", "toxic", "incompatible"} <= kinds  # 附子: 孕妇慎用, 有毒, 反半夏…
    assert await _reads(sessions, rx_id, "prescription.read") == 1

    doctor = await login(api, visit.doctor_user)
    assert (await api.get(f"/api/v1/prescriptions/{rx_id}/guidance", headers=doctor)).status_code == 200
    other_user, _ = await make_user(sessions, Role.PATIENT)
    other = await login(api, other_user)
    assert (await api.get(f"/api/v1/prescriptions/{rx_id}/guidance", headers=other)).status_code == 404


async def _inbox(sessions, user_id: str, template: str) -> list[Notification]:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        rows = await session.execute(
            select(Notification).where(col(Notification.user_id) == user_id, col(Notification.template) == template)
        )
        return list(rows.scalars())


async def test_an_adverse_reaction_reaches_the_dispensing_pharmacist_who_answers_the_patient(
    api, sessions, settings
) -> None:  # type: ignore[no-untyped-def]
    pharmacist_user, pharmacist_id = await make_user(sessions, Role.PHARMACIST)
    visit, not_yet = await _prescription(sessions, settings, "fulfilling", "at_pharmacy")
    patient = await login(api, visit.patient_user)
    body = {"severity": "moderate", "symptoms": "服药第二天起皮肤瘙痒、起红疹"}
    early = await api.post(f"/api/v1/prescriptions/{not_yet}/adverse-reactions", json=body, headers=patient)
    assert early.status_code == 409 and early.json()["code"] == "RX_NOT_DELIVERED"

    visit, rx_id = await _delivered(sessions, settings, pharmacist_id)
    patient = await login(api, visit.patient_user)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    created = await api.post(f"/api/v1/prescriptions/{rx_id}/adverse-reactions", json=body, headers=patient | key)
    assert created.status_code == 201, created.text
    report_id = created.json()["report_id"]
    again = await api.post(f"/api/v1/prescriptions/{rx_id}/adverse-reactions", json=body, headers=patient | key)
    assert again.json()["report_id"] == report_id  # the same report, not a second one
    other_user, _ = await make_user(sessions, Role.PATIENT)
    other = await login(api, other_user)
    stranger = await api.post(f"/api/v1/prescriptions/{rx_id}/adverse-reactions", json=body, headers=other)
    assert stranger.status_code == 404

    async def recorded() -> bool:
        async with sessions() as session:
            return await session.get(AdverseReactionReport, report_id) is not None

    await until(recorded)
    pharmacist = await login(api, pharmacist_user)
    queue = (await api.get("/api/v1/adverse-reactions", params={"limit": 200}, headers=pharmacist)).json()
    [listed] = [r for r in queue if r["report_id"] == report_id]
    assert listed["severity"] == "moderate" and "symptoms" not in listed
    assert (await api.get("/api/v1/adverse-reactions", headers=patient)).status_code == 403
    reports = (await api.get(f"/api/v1/prescriptions/{rx_id}/adverse-reactions", headers=pharmacist)).json()
    assert [(r["report_id"], r["symptoms"], r["stage"]) for r in reports] == [(report_id, body["symptoms"], "open")]

    async def told() -> bool:
        return bool(await _inbox(sessions, pharmacist_user, "adverse_reaction_reported"))

    await until(told)  # the dispensing pharmacist by name, not only whoever is on duty

    reply = {"action": "stop", "advice": "请暂停服药，症状未缓解请到皮肤科就诊。"}
    answered = await api.post(f"/api/v1/adverse-reactions/{report_id}/response", json=reply, headers=pharmacist)
    assert answered.status_code == 200, answered.text
    assert answered.json()["stage"] == "responded" and answered.json()["response"]["pharmacist_id"] == pharmacist_id
    twice = await api.post(f"/api/v1/adverse-reactions/{report_id}/response", json=reply, headers=pharmacist)
    assert twice.status_code == 409 and twice.json()["code"] == "ADVERSE_REACTION_ANSWERED"
    patient_reply = await api.post(f"/api/v1/adverse-reactions/{report_id}/response", json=reply, headers=patient)
    assert patient_reply.status_code == 403

    async def answered_to_patient() -> bool:
        return bool(await _inbox(sessions, visit.patient_user, "adverse_reaction_answered"))

    await until(answered_to_patient)
    [notice] = await _inbox(sessions, visit.patient_user, "adverse_reaction_answered")
    assert "请暂停服药" in notice.body
    mine = (await api.get(f"/api/v1/prescriptions/{rx_id}/adverse-reactions", headers=patient)).json()
    assert (mine[0]["response_action"], mine[0]["responded_by"]) == ("stop", pharmacist_id)
    assert await _reads(sessions, report_id, "adverse_reaction.reported") == 1
    assert await _reads(sessions, report_id, "adverse_reaction.responded") == 1
    assert await _reads(sessions, rx_id, "adverse_reaction.read") == 2


async def _delivered(sessions, settings: Settings, pharmacist_id: str | None) -> tuple[ConsultVisit, str]:  # type: ignore[no-untyped-def]
    visit, rx_id = await _prescription(sessions, settings, "completed", "signed")
    async with sessions() as session, session.begin():
        row = await session.get(Fulfilment, rx_id)
        assert row is not None
        row.recheck = {"pharmacist_id": pharmacist_id, "pharmacy_id": OWN_PHARMACY, "approve": True}
    return visit, rx_id
