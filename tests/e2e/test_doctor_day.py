"""The doctor's day over the real stack (8.2.1–8.2.3): the visit on the doctor's worklist, notices on every configured
channel, the audited preview with the revisit evidence, then a consultation (会诊): the invited doctor is notified,
joins the chat, signs an opinion and prescribes; the visit's doctor signs the record and finishes."""

from __future__ import annotations

import os
import uuid
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from models.tables import AuditEvent, SandboxCall
from workers.journey import PRESCRIPTION, RECORD, Journey
from workers.seed import DEMO_HIS_DIAGNOSES, DEMO_IDENTITIES

CONSULTANT = "demo-doctor2"
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(1024)


async def upload_record(journey: Journey, disease_code: str, visited_on: str) -> dict[str, Any]:
    """The patient uploads a photo of an earlier offline record for the disease (multipart)."""
    answer = await journey.http.post(
        "/api/v1/revisit-uploads",
        data={"disease_code": disease_code, "visited_on": visited_on},
        files={"file": ("门诊病历.png", PNG, "image/png")},
        headers={**await journey.login(journey.patient), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert answer.status_code == 201, answer.text
    upload: dict[str, Any] = answer.json()["upload"]
    return upload


async def channels_of(stack, user_id: str, key_prefix: str) -> set[str]:  # type: ignore[no-untyped-def]
    """Where the sandbox notifier sent the notice with that key to that user."""
    async with stack.sessions() as session:
        requests = (
            await session.execute(
                select(col(SandboxCall.request)).where(
                    col(SandboxCall.system) == "notifier", col(SandboxCall.idempotency_key).like(f"{key_prefix}%")
                )
            )
        ).scalars()
        return {r["channel"] for r in requests if r["user_id"] == user_id}


async def test_a_consultation_from_the_worklist_to_the_consultants_prescription(make_stack) -> None:
    stack = await make_stack()
    journey = Journey(stack.http)
    _, disease, doctor_id = DEMO_HIS_DIAGNOSES["demo-patient"]
    await journey.register_patient(DEMO_IDENTITIES["demo-patient"], disease)
    visit = await journey.book(await journey.free_slot(doctor_id, disease))
    await journey.pay(visit["bill_id"], "挂号费")
    visit_id = visit["visit_id"]

    worklist = await journey.until(
        "出现在医生的待接诊列表",
        lambda: journey.call("GET", "/me/worklist", journey.doctor),
        lambda lists: visit_id in {item["visit_id"] for item in lists["waiting"]},
    )
    [item] = [i for i in worklist["waiting"] if i["visit_id"] == visit_id]
    assert (item["role"], item["patient"]["name_masked"]) == ("attending", "张*")
    doctor_user = (await journey.call("GET", "/me", journey.doctor))["user_id"]
    patient_user = (await journey.call("GET", "/me", journey.patient))["user_id"]
    notices = f"visit-{visit_id}:"
    await journey.until(
        "接诊通知", lambda: channels_of(stack, doctor_user, f"{notices}assigned"), lambda sent: sent == {"app"}
    )
    # Patients have a phone on record: the booking notice also goes by SMS (the configured channels: app, sms).
    await journey.until(
        "挂号成功通知",
        lambda: channels_of(stack, patient_user, f"{notices}booked"),
        lambda sent: sent == {"app", "sms"},
    )

    preview = await journey.call("GET", f"/visits/{visit_id}/preview", journey.doctor)
    assert preview["patient"]["name"] == DEMO_IDENTITIES["demo-patient"]["name"] and preview["warnings"] == []
    assert preview["revisit"]["status"] == "eligible"
    assert "his-enc-demo-1" in {e["encounter_id"] for e in preview["revisit"]["evidence"]}
    await journey.call("POST", f"/visits/{visit_id}/accept", journey.doctor)

    consultant_id = (await journey.call("GET", "/me", CONSULTANT))["user_id"]
    invited = await journey.call(
        "POST", f"/visits/{visit_id}/consultants", journey.doctor,
        json={"consultant_id": "doc-2", "reason": "腹泻与胃胀并见，请肠病方向医生会诊"},
    )  # fmt: skip
    assert invited["consultants"] == ["doc-2"]
    inbox = await journey.until(
        "会诊邀请通知",
        lambda: journey.call("GET", "/me/notifications", CONSULTANT),
        lambda box: any(n["title"] == "会诊邀请" for n in box["items"]),
    )
    assert "肠病方向医生会诊" in next(n["body"] for n in inbox["items"] if n["title"] == "会诊邀请")
    theirs = await journey.call("GET", "/me/worklist", CONSULTANT)
    assert [(i["visit_id"], i["role"]) for i in theirs["in_consult"] if i["visit_id"] == visit_id] == [
        (visit_id, "consultant")
    ]
    await journey.call("GET", f"/visits/{visit_id}/preview", CONSULTANT)

    said = await journey.call(
        "POST", f"/visits/{visit_id}/messages", CONSULTANT, expected=201,
        json={"body": "我是会诊医生王清和，请问大便一天几次？", "client_msg_id": str(uuid.uuid4())},
    )  # fmt: skip
    assert (said["sender_user_id"], said["sender_role"]) == (consultant_id, "doctor")
    history = await journey.call("GET", f"/visits/{visit_id}/messages", journey.patient)
    assert said["id"] in {m["id"] for m in history["items"]}

    await journey.call(
        "POST", f"/visits/{visit_id}/opinions", CONSULTANT, json={"opinion": "兼有脾虚泄泻，建议加炒山药、炒扁豆。"}
    )
    [consultant] = await journey.call("GET", f"/visits/{visit_id}/consultants", journey.patient)
    assert consultant["signature_state"] == {"valid": True, "problem": None}
    created = await journey.call(
        "POST", f"/visits/{visit_id}/prescriptions", CONSULTANT, expected=201, json=PRESCRIPTION
    )
    mine = await journey.call("GET", f"/prescriptions/{created['prescription_id']}", CONSULTANT)
    assert mine["summary"]["doctor_id"] == "doc-2"
    # The visit's own doctor sees what was prescribed in their consult.
    theirs = await journey.call("GET", f"/prescriptions/{created['prescription_id']}", journey.doctor)
    assert theirs["summary"]["visit_id"] == visit_id

    await journey.call("PUT", f"/visits/{visit_id}/record", journey.doctor, json=RECORD)
    await journey.call("POST", f"/visits/{visit_id}/record/sign", journey.doctor)
    await journey.call("POST", f"/visits/{visit_id}/finish", journey.doctor)
    finished = await journey.until(
        "会诊医生的已完成列表",
        lambda: journey.call("GET", "/me/worklist", CONSULTANT),
        lambda lists: visit_id in {i["visit_id"] for i in lists["finished"]},
    )
    assert visit_id not in {i["visit_id"] for i in finished["in_consult"]}
    async with stack.sessions() as session:
        previews = (
            (
                await session.execute(
                    select(col(AuditEvent.actor_user_id)).where(
                        col(AuditEvent.action) == "visit_preview.read", col(AuditEvent.subject_id) == visit_id
                    )
                )
            )
            .scalars()
            .all()
        )
    assert set(previews) == {doctor_user, consultant_id}
