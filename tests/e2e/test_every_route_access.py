"""Patient A cannot read or change anything of patient B through any endpoint (issue 7, item 7).

The test builds demo-patient's records through the API, then walks every route of the OpenAPI as demo-patient2:
each route either refuses (401/403/404/405/409/422, never 2xx, never the owner's identity in the answer) or is in
`NOT_WALKED`, with the reason it needs no such check. A route added later without an access decision fails the test.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from models.common import HOSPITAL_TZ
from tests.e2e.test_doctor_day import upload_record
from workers.journey import PRESCRIPTION, RECORD, Journey
from workers.seed import DEMO_HIS_DIAGNOSES, DEMO_IDENTITIES

OWNER = DEMO_IDENTITIES["demo-patient"]
REFUSED = {401, 403, 404, 405, 409, 422}

# Routes that are not walked, each with the reason it needs no "another patient's record" check.
NOT_WALKED: set[str] = {
    "GET /api/v1/health",  # liveness probe, no data
    "POST /api/v1/auth/token",  # login: the caller proves who they are
    "POST /api/v1/auth/token/mfa/sms",  # login second factor: bound to the caller's MFA challenge
    "POST /api/v1/auth/token/mfa",  # login second factor: bound to the caller's MFA challenge
    "POST /api/v1/auth/logout",  # ends the caller's own session (walking it would log the walker out)
    "POST /api/v1/auth/password",  # changes the caller's own password
    "GET /api/v1/auth/mfa",  # the caller's own MFA settings
    "POST /api/v1/auth/mfa/totp",  # enrols the caller's own TOTP
    "POST /api/v1/auth/mfa/totp/confirm",  # confirms the caller's own TOTP
    "POST /api/v1/auth/mfa/sms",  # enrols the caller's own SMS factor
    "POST /api/v1/auth/mfa/sms/confirm",  # confirms the caller's own SMS factor
    "GET /api/v1/me",  # the caller's own profile
    "POST /api/v1/me/consents",  # the caller's own consents
    "PUT /api/v1/me/identity",  # the caller's own real-name data
    "GET /api/v1/me/booking-block",  # the caller's own booking block
    "GET /api/v1/me/notifications",  # the caller's own inbox (checked by the list test)
    "GET /api/v1/me/complaints",  # the caller's own complaints (checked by the list test)
    "GET /api/v1/consent-documents",  # public catalogue: the texts everyone signs
    "GET /api/v1/departments",  # public catalogue
    "GET /api/v1/departments/{department_id}/doctors",  # public catalogue
    "GET /api/v1/doctors",  # public catalogue
    "GET /api/v1/doctors/{doctor_id}",  # public catalogue
    "GET /api/v1/doctors/{doctor_id}/slots",  # public schedule: open slots, no patient data
    "GET /api/v1/diseases",  # public catalogue
    "GET /api/v1/service-info",  # public hospital information
    "GET /api/v1/notices",  # public notices
    "GET /api/v1/revisit-checks",  # the caller's own revisit checks
    "POST /api/v1/revisit-uploads",  # uploads the caller's own record for their revisit check
    "GET /api/v1/revisit-uploads",  # the caller's own uploads (checked by the list test)
    "POST /api/v1/revisit-checks",  # starts the caller's own revisit check
    "POST /api/v1/bookings",  # books for the caller, a slot is not patient data
    "GET /api/v1/visits",  # the caller's own list (checked by the list test)
    "GET /api/v1/records",  # the caller's own list (checked by the list test)
    "GET /api/v1/prescriptions",  # the caller's own list (checked by the list test)
    "GET /api/v1/me/evaluations",  # the caller's own evaluations (or a doctor's of their visits)
    "GET /api/v1/doctors/{doctor_id}/evaluations",  # public: public evaluations without their authors
    "GET /api/v1/bills",  # the caller's own list (checked by the list test)
    "GET /api/v1/exams",  # the caller's own list (checked by the list test)
    "GET /api/v1/exam-catalogue",  # the hospital's exam catalogue: names and prices, no patient data
    "GET /api/v1/exam-catalogue/{exam_code}/availability",  # places left per day, no patient data
    "POST /api/v1/prescriptions/check",  # stateless rule check of a body, staff only (test_access checks the role)
    "GET /api/v1/pharmacists/me/duty",  # the caller's own duty status
    "POST /api/v1/pharmacists/me/duty",  # the caller's own duty status
    "GET /api/v1/pharmacists/on-duty",  # who is on duty: staff names, no patient data
    "GET /api/v1/pharmacies",  # public catalogue: the partner pharmacies patients may choose
    "POST /api/v1/callbacks/payments/{channel}",  # channel callback, authenticated by the channel's signature
    "POST /api/v1/callbacks/couriers/{name}",  # courier callback, authenticated by the courier's signature
    "POST /api/v1/callbacks/insurance/{name}/authorizations",  # 医保 platform callback, authenticated by its gateway
    "POST /api/v1/callbacks/insurance/{name}/notices",  # 医保 platform callback, authenticated by its gateway
    "POST /api/v1/staff-applications",  # a doctor or pharmacist registering: creates their own account, no patient data
}

# Path parameters that do not name the owner's records get a plausible value of someone else's object; the walker
# is a patient, so the staff-only routes that take them must refuse too.
PLACEHOLDERS = {
    "department_id": "dept-1",
    "doctor_id": "doc-1",
    "schedule_id": "sch-1",
    "role": "patient",
    "permission": "visit.read",
    "change_id": "chg-1",
    "block_id": "blk-1",
    "run_id": "run-1",
    "item_id": "item-1",
    "channel": "sandbox",
    "bill_date": "2026-01-01",
    "app_id": "app-1",
    "waybill_no": "SF0000000001",
    "name": "sandbox",
    "refund_id": "refund-1",
    "pharmacy_id": "hospital",
    "pharmacist_id": "ph-1",
    "report_id": "rx-1-adr000000",
    "staff_id": "stf-1",
    "document_id": "sdoc-1",
    "institution_id": "inst-1",
    "item_no": "1",
}

# The smallest valid body of each walked write (a 422 would not show whether access was checked).
BODIES: dict[str, Any] = {
    "POST /api/v1/visits/{visit_id}/cancel": {"reason": "x"},
    "POST /api/v1/visits/{visit_id}/leave-choice": {"choice": "refund"},
    "POST /api/v1/visits/{visit_id}/abort": {"reason": "x", "advice": "x"},
    "POST /api/v1/visits/{visit_id}/prescriptions": PRESCRIPTION,
    "PUT /api/v1/visits/{visit_id}/record": RECORD,
    "POST /api/v1/visits/{visit_id}/record/addenda": {"text": "x"},
    "POST /api/v1/visits/{visit_id}/prescriptions/renew": {"prescription_id": "{prescription_id}"},
    "POST /api/v1/visits/{visit_id}/messages": {"body": "x", "client_msg_id": "walker-1"},
    "POST /api/v1/visits/{visit_id}/messages/read": {"up_to": 1},
    "POST /api/v1/visits/{visit_id}/calls": {"media": "audio"},
    "PUT /api/v1/visits/{visit_id}/guardian": {
        "guardian_name": "x",
        "guardian_id_card_no": "110101198001010010",
        "relationship": "x",
        "physician_name": "x",
        "physician_licence_no": "1",
    },
    "POST /api/v1/visits/{visit_id}/consultants": {"consultant_id": "doc-2", "reason": "x"},
    "POST /api/v1/visits/{visit_id}/opinions": {"opinion": "x"},
    "POST /api/v1/visits/{visit_id}/exams": {"exam_codes": ["LAB-CBC"]},
    "POST /api/v1/exams/{order_id}/items/{item_no}/booking": {"day": "2030-01-01"},
    "POST /api/v1/exams/{order_id}/cancel": {"reason": "x"},
    "POST /api/v1/exams/{order_id}/hospital-cancel": {"reason": "x", "reason_code": "schedule_changed"},
    "POST /api/v1/revisit-uploads/{upload_id}/review": {"approve": True},
    "POST /api/v1/prescriptions/{prescription_id}/sign": {"reason": None},
    "POST /api/v1/prescriptions/{prescription_id}/revise": PRESCRIPTION,
    "POST /api/v1/prescriptions/{prescription_id}/review": {"approve": True, "reason": "x"},
    "POST /api/v1/prescriptions/{prescription_id}/confirm": {"pickup": "hospital"},
    "POST /api/v1/prescriptions/{prescription_id}/dispense": {"approve": True, "note": "x"},
    "POST /api/v1/prescriptions/{prescription_id}/sign-off": {"pickup_code": "123456"},
    "POST /api/v1/prescriptions/{prescription_id}/sign-off/unlock": {"reason": "x"},
    "POST /api/v1/prescriptions/{prescription_id}/adverse-reactions": {"severity": "mild", "symptoms": "x"},
    "POST /api/v1/adverse-reactions/{report_id}/response": {"action": "continue", "advice": "x"},
    "POST /api/v1/complaints": {
        "subject_type": "visit",
        "subject_id": "{visit_id}",
        "category": "service",
        "text": "x",
    },
    "POST /api/v1/admin/complaints/{complaint_id}/response": {"response": "x"},
    "PUT /api/v1/admin/pharmacies/{pharmacy_id}": {"name": "x", "adapter": "sandbox"},
    "PUT /api/v1/admin/users/{user_id}/permissions/{permission}": {"effect": "grant", "reason": "x"},
    "PUT /api/v1/admin/roles/{role}/permissions/{permission}": {"granted": True, "reason": "x"},
    "PUT /api/v1/admin/users/{user_id}/finance-level": {"level": "supervisor", "reason": "x"},
    "POST /api/v1/admin/users/{user_id}/unlock": {"reason": "x"},
    "POST /api/v1/admin/booking-blocks/{block_id}/lift": {"reason": "x"},
    "POST /api/v1/schedules/{schedule_id}/extra-slots": {"reason": "x", "patient_id": "{patient_id}"},
    "POST /api/v1/patients/{patient_id}/bookings": {"slot_id": "x"},
    "POST /api/v1/schedules/{schedule_id}/changes": {"kind": "leave", "reason": "x"},
    "POST /api/v1/reconciliation/runs/{run_id}/items/{item_id}/resolution": {"resolution": "written_off", "note": "x"},
    "POST /api/v1/reconciliation/runs": {"channel": "sandbox", "bill_date": "2026-01-01"},
    "POST /api/v1/sandbox/courier/{waybill_no}/advance": {"status": "delivered", "note": "x"},
    "POST /api/v1/temporal-codec/decode": {"payloads": []},
    "POST /api/v1/bills/{bill_id}/refunds": {"reason_code": "patient_unable_to_attend", "reason": "x"},
    "POST /api/v1/bills/{bill_id}/special-refunds": {"reason": "x", "amount_fen": 1},
    "POST /api/v1/refunds/{refund_id}/negotiation": {"party": "hospital", "agreed": True},
    "POST /api/v1/refunds/{refund_id}/conclusion": {"approve": False, "note": "x"},
    "POST /api/v1/prescriptions/{prescription_id}/refund-request": {"reason": "x"},
    "POST /api/v1/prescriptions/{prescription_id}/refund-request/decision": {"approve": False, "note": "x"},
    "POST /api/v1/temporal-codec/encode": {"payloads": []},
    "POST /api/v1/admin/users/{user_id}/disable": {"reason": "x"},
    "POST /api/v1/admin/users/{user_id}/enable": {"reason": "x"},
    "POST /api/v1/admin/staff-applications/{staff_id}/review": {"approve": True},
    "POST /api/v1/admin/institutions": {
        "code": "PDY0001",
        "name": "走查医院",
        "kind": "互联网医院",
        "licence_no": "PDY0001",
        "access_ips": ["203.0.113.10"],
    },
    "POST /api/v1/admin/departments": {"id": "dept-walker", "name": "x", "subject_code": "50"},
    "PATCH /api/v1/admin/departments/{department_id}": {"name": "x"},
    "POST /api/v1/admin/supervision/uploads": {"day": "2026-11-01"},
    "POST /api/v1/visits/{visit_id}/evaluation": {"doctor_rating": 1, "department_rating": 1, "hospital_rating": 1},
    "PUT /api/v1/admin/evaluations/{evaluation_id}/visibility": {"visibility": "hidden", "reason": "x"},
    "POST /api/v1/admin/evaluations/{evaluation_id}/handling": {"note": "x"},
    "POST /api/v1/catalog/changes": {"kind": "disable", "herb_name": "党参", "reason": "x"},
    "POST /api/v1/catalog/changes/{change_id}/decision": {"approve": True},
    "PUT /api/v1/admin/institutions/{institution_id}": {
        "code": "PDY0001",
        "name": "走查医院",
        "kind": "互联网医院",
        "licence_no": "PDY0001",
        "access_ips": ["203.0.113.10"],
    },
}

# Query parameters that can name the owner (admin searches): walked with the owner's ids.
OWNER_QUERY = {"patient_id", "subject_id", "visit_id", "prescription_id", "bill_id"}


class OwnerJourney(Journey):
    """The demo journey, also starting and ending a call, sending one more message and ordering an exam during the
    consult."""

    extra: dict[str, str]

    async def chat(self, visit_id: str) -> None:
        await super().chat(visit_id)
        sent = await self.call(
            "POST", f"/visits/{visit_id}/messages", self.patient, expected=201,
            json={"body": "医生，舌头的照片稍后发您。", "client_msg_id": str(uuid.uuid4())},
        )  # fmt: skip
        self.extra = {"message_id": str(sent["id"])}
        for media in ("video", "audio"):
            call = await self.http.post(
                f"/api/v1/visits/{visit_id}/calls", json={"media": media}, headers=await self.login(self.doctor)
            )
            if call.status_code in (200, 201):
                self.extra["call_id"] = call.json()["call_id"]
                await self.call("POST", f"/visits/{visit_id}/calls/{self.extra['call_id']}/end", self.doctor)
                break
        ordered = await self.call(
            "POST", f"/visits/{visit_id}/exams", self.doctor, expected=201, json={"exam_codes": ["LAB-CBC"]}
        )
        self.extra["order_id"] = ordered["order_id"]


def _fill(template: Any, ids: dict[str, str]) -> Any:
    if isinstance(template, str):
        return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], template)
    if isinstance(template, dict):
        return {k: _fill(v, ids) for k, v in template.items()}
    return template


def _leaks(answer: httpx.Response, owner: dict[str, str]) -> list[str]:
    """Owner data in the answer; a problem's `instance` echoes the caller's own request path, which is not a leak."""
    text = answer.text.replace(answer.request.url.path, "")
    return [what for what, value in owner.items() if value and value in text]


@pytest.fixture
async def owned(make_stack):
    """demo-patient's finished visit with chat, call, signed record, prescription and paid bill."""
    stack = await make_stack()
    journey = OwnerJourney(stack.http)
    _, disease, doctor = DEMO_HIS_DIAGNOSES["demo-patient"]
    await journey.register_patient(OWNER, disease)
    visit = await journey.book(await journey.free_slot(doctor, disease))
    await journey.pay(visit["bill_id"], "挂号费")
    await journey.visit_stage(visit["visit_id"], "waiting_doctor", journey.patient)
    # consult() writes the record (PUT …/record with RECORD) and signs it (POST …/record/sign) as the doctor.
    prescription_id = await journey.consult(visit["visit_id"])
    visited_on = (datetime.now(HOSPITAL_TZ).date() - timedelta(days=30)).isoformat()
    upload = await upload_record(journey, disease, visited_on)
    rating = {"doctor_rating": 2, "department_rating": 5, "hospital_rating": 5, "comment": "回复稍慢"}
    evaluation = await journey.call(
        "POST", f"/visits/{visit['visit_id']}/evaluation", journey.patient, expected=201, json=rating
    )
    me = await journey.call("GET", "/me", journey.patient)
    inbox = await journey.call("GET", "/me/notifications", journey.patient)
    complaint = await journey.call(
        "POST", "/complaints", journey.patient, expected=201,
        json={"subject_type": "visit", "subject_id": visit["visit_id"], "category": "service", "text": "医生回复很慢。"},
    )  # fmt: skip
    ids = {
        "visit_id": visit["visit_id"],
        "prescription_id": prescription_id,
        "bill_id": visit["bill_id"],
        "patient_id": me["patient"]["id"],
        "user_id": me["user_id"],
        "subject_id": me["patient"]["id"],
        "notification_id": str(inbox["items"][0]["id"]),
        "call_id": "call-unknown",
        "upload_id": upload["upload_id"],
        "complaint_id": complaint["id"],
        "evaluation_id": evaluation["id"],
        **journey.extra,
    }
    other = Journey(stack.http, patient="demo-patient2", doctor="demo-doctor2")
    return journey, other, ids


async def _snapshot(journey: Journey, ids: dict[str, str]) -> dict[str, Any]:
    visit, rx = ids["visit_id"], ids["prescription_id"]
    messages = await journey.call("GET", f"/visits/{visit}/messages", journey.patient)
    prescription = await journey.call("GET", f"/prescriptions/{rx}", journey.patient)
    prescription["summary"].pop("waiting_s")  # grows with the clock while the prescription waits for review
    return {
        "visit": await journey.call("GET", f"/visits/{visit}", journey.patient),
        "prescription": prescription,
        "bill": await journey.call("GET", f"/bills/{ids['bill_id']}", journey.patient),
        "exam": await journey.call("GET", f"/exams/{ids['order_id']}", journey.patient),
        "record": await journey.call("GET", f"/visits/{visit}/record", journey.patient),
        "evaluation": await journey.call("GET", f"/visits/{visit}/evaluation", journey.patient),
        "messages": [m["id"] for m in messages["items"]],
    }


async def test_another_patient_is_refused_by_every_route(owned) -> None:
    journey, other, ids = owned
    before = await _snapshot(journey, ids)
    schema = (await other.http.get("/openapi.json")).json()
    headers = await other.login(other.patient)
    owner_marks = {"patient id": ids["patient_id"], "name": OWNER["name"], "id card": OWNER["id_card_no"]}
    owner_marks["phone"] = OWNER["phone"]

    walked: list[str] = []
    allowed: list[str] = []
    failures: list[str] = []
    unanswerable_bodies: list[str] = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            route = f"{method.upper()} {path}"
            if route in NOT_WALKED:
                allowed.append(route)
                continue
            values = {**PLACEHOLDERS, **ids}
            params = {
                p["name"]: ids[p["name"]]
                for p in operation.get("parameters", [])
                if p["in"] == "query" and p["name"] in OWNER_QUERY
            }
            kwargs: dict[str, Any] = {"params": params, "headers": headers}
            if "requestBody" in operation:
                content = operation["requestBody"]["content"]
                body = _fill(BODIES.get(route, {}), values)
                if "application/json" in content:
                    kwargs["json"] = body
                else:
                    kwargs["data"] = body
            answer = await other.http.request(method.upper(), _fill(path, values), **kwargs)
            walked.append(route)
            if answer.status_code == 422:
                unanswerable_bodies.append(route)
            if answer.status_code not in REFUSED:
                failures.append(f"{route} -> {answer.status_code}: {answer.text[:300]}")
            elif leaks := _leaks(answer, owner_marks):
                failures.append(f"{route} -> {answer.status_code} leaks {leaks}: {answer.text[:300]}")

    print(f"walked {len(walked)} routes, {len(allowed)} not walked; 422 on {unanswerable_bodies}")
    assert not failures, "\n".join(failures)
    stale = NOT_WALKED - set(allowed)
    assert not stale, f"NOT_WALKED names routes the API no longer has: {stale}"

    # The other patient's own lists never hold the owner's records.
    for listing, key, ident in (
        ("/visits", "visit_id", "visit_id"),
        ("/prescriptions", "prescription_id", "prescription_id"),
        ("/bills", "bill_id", "bill_id"),
        ("/exams", "order_id", "order_id"),
        ("/records", "visit_id", "visit_id"),
        ("/revisit-uploads", "upload_id", "upload_id"),
        ("/me/complaints", "id", "complaint_id"),
    ):
        answer = await other.http.get(f"/api/v1{listing}", headers=headers)
        assert answer.status_code == 200, listing
        items = answer.json()
        items = items["items"] if isinstance(items, dict) else items
        assert ids[ident] not in {str(i.get(key)) for i in items}, listing
        assert not _leaks(answer, owner_marks), listing
    inbox = await other.http.get("/api/v1/me/notifications", headers=headers)
    assert inbox.status_code == 200
    assert ids["notification_id"] not in {str(i["id"]) for i in inbox.json()["items"]}
    assert ids["visit_id"] not in inbox.text and not _leaks(inbox, owner_marks)

    # The owner still sees everything, unchanged by the attempts.
    after = await _snapshot(journey, ids)
    assert after == before
    assert after["visit"]["stage"] == "finished"
    assert after["bill"]["status"] == "paid"
