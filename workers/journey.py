"""One patient's whole follow-up journey, driven over the HTTP API exactly as the front-end apps drive it.

`make demo` runs it against the running stack and prints the timeline; the end-to-end and durability tests run it
against an in-process app. Every step checks the answer it got and raises `JourneyError` when the platform did
not do what the step expects.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from models.supervision import KIND_NAMES

SHANGHAI = ZoneInfo("Asia/Shanghai")
PASSWORD = "Qihuang#2026"

RECORD = {
    "chief_complaint": "胃脘胀满反复3月，加重1周",
    "present_illness": "3月前饮食不节后出现胃脘胀满，食后尤甚，伴纳差乏力，大便溏薄。",
    "past_history": "慢性浅表性胃炎病史2年",
    "allergy_history": "否认药物过敏史",
    "tongue": "舌淡胖，边有齿痕，苔白腻",
    "pulse": "脉濡缓",
    "tcm_disease": "胃痞病",
    "tcm_syndrome": "脾虚湿阻证",
    "western_diagnosis": "K29.301 慢性浅表性胃炎",
    "treatment_principle": "健脾化湿，理气消痞",
    "orders": "饮食清淡，忌生冷油腻；7剂后复诊。",
}

# 香砂六君子汤加减. 党参 above its ChP range makes the rule check ask for a second signature with a reason.
CHAT = (
    ("patient", "医生您好，我这三个月吃完饭胃里总是胀，最近两周更明显。"),
    ("doctor", "您好。胀的时候打嗝吗？大便怎么样？请拍一张舌头的照片发给我。"),
    ("patient", "会打嗝，大便偏稀。舌头的照片稍后发您。"),
)

PRESCRIPTION = {
    "diagnosis": "胃痞病 脾虚湿阻证",
    "items": [
        {"herb": "党参", "dose_g": 35},
        {"herb": "白术", "dose_g": 12},
        {"herb": "茯苓", "dose_g": 15},
        {"herb": "陈皮", "dose_g": 9},
        {"herb": "木香", "dose_g": 6, "decoction": "后下"},
        {"herb": "砂仁", "dose_g": 6, "decoction": "后下"},
        {"herb": "甘草", "dose_g": 6},
    ],
    "doses": 7,
    "usage": "水煎服，每日一剂，早晚饭后温服",
}


# A 医保电子凭证 token of the sandbox 医保 platform: an employee (职工医保, 310) whose bills the pooled fund shares.
DEMO_EC_TOKEN = "DEMO-ECTOKEN-0001"


class JourneyError(RuntimeError):
    pass


class Unavailable(JourneyError):
    """A 503: the platform asks to be asked again shortly (Retry-After)."""


@dataclass
class Step:
    at_s: float
    actor: str
    what: str
    detail: str = ""


@dataclass
class Journey:
    """Drives one journey; `timeline` records what happened, `ids` the flow ids to look up in the Temporal UI."""

    http: httpx.AsyncClient
    patient: str = "demo-patient"
    doctor: str = "demo-doctor"
    pharmacist: str = "demo-pharmacist"
    admin: str = "demo-admin"
    password: str = PASSWORD
    poll_s: float = 0.1
    wait_s: float = 60.0
    timeline: list[Step] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)
    _tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    _start: float = field(default_factory=time.monotonic)

    # --- plumbing ---

    def log(self, actor: str, what: str, detail: str = "") -> None:
        self.timeline.append(Step(round(time.monotonic() - self._start, 2), actor, what, detail))

    async def login(self, username: str) -> dict[str, str]:
        if username not in self._tokens:
            answer = await self.http.post("/api/v1/auth/token", data={"username": username, "password": self.password})
            self._expect(answer, 200, f"{username} 登录")
            self._tokens[username] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        return self._tokens[username]

    async def call(
        self,
        method: str,
        path: str,
        user: str,
        expected: int | tuple[int, ...] = 200,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        headers = {**(await self.login(user)), **(headers or {})}
        answer = await self.http.request(method, f"/api/v1{path}", headers=headers, **kwargs)
        self._expect(answer, expected, f"{method} {path}")
        return answer.json() if answer.content else None

    @staticmethod
    def _expect(answer: httpx.Response, expected: int | tuple[int, ...], what: str) -> None:
        if answer.status_code not in (expected if isinstance(expected, tuple) else (expected,)):
            if answer.status_code == 503:
                raise Unavailable(f"{what}: 503: {answer.text[:500]}")
            raise JourneyError(f"{what}: expected {expected}, got {answer.status_code}: {answer.text[:500]}")

    async def until(self, what: str, probe: Callable[[], Awaitable[Any]], done: Callable[[Any], bool]) -> Any:
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                value = await probe()
            except Unavailable as busy:  # asked to come back: that is what polling does anyway
                value = busy
            else:
                if done(value):
                    return value
            if time.monotonic() > deadline:
                raise JourneyError(f"timed out waiting for: {what} (last: {value})")
            await asyncio.sleep(self.poll_s)

    # --- the patient gets ready ---

    async def register_patient(self, identity: dict[str, str], disease_code: str) -> None:
        """Real-name data, the informed consent and privacy policy, then the revisit check for the disease."""
        documents = (await self.http.get("/api/v1/consent-documents")).json()
        for document in documents:
            await self.call(  # 200: this version was accepted before
                "POST", "/me/consents", self.patient, expected=(200, 201),
                json={"document": document["document"], "version": document["version"]},
            )  # fmt: skip
        self.log(self.patient, "签署知情同意书与隐私协议", ", ".join(d["document"] for d in documents))
        await self.call("PUT", "/me/identity", self.patient, expected=202, json=identity)
        me = await self.until(
            "实名认证", lambda: self.call("GET", "/me", self.patient), lambda me: me["patient"]["verified"]
        )
        self.log(self.patient, "实名认证通过", f"手机 {me['patient'].get('phone_masked', '')}")
        decision = await self.call("POST", "/revisit-checks", self.patient, json={"disease_code": disease_code})
        if decision["status"] != "eligible":
            raise JourneyError(f"revisit check: {decision}")
        self.ids["revisit"] = f"revisit-{decision['patient_id']}-{disease_code}"
        evidence = decision["evidence"][0]
        self.log(self.patient, "复诊预判通过", f"{evidence['disease_name']}，线下就诊 {evidence['encounter_id']}")

    # --- booking and paying ---

    async def free_slot(self, doctor_id: str, disease_code: str, skip: int = 0) -> str:
        today = date.today()
        for offset in range(1, 8):
            day = (today + timedelta(days=offset)).isoformat()
            slots = (await self.http.get(f"/api/v1/doctors/{doctor_id}/slots", params={"date": day})).json()
            free = [s["id"] for s in slots if s["status"] == "open" and s["disease_code"] == disease_code]
            if len(free) > skip:
                return free[skip]
            skip -= len(free)
        raise JourneyError(f"no free slot of {doctor_id} for {disease_code}")

    async def book(self, slot_id: str, insurance: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = (
            {"slot_id": slot_id} if insurance is None else {"slot_id": slot_id, "insurance": insurance}
        )
        visit = await self.call(
            "POST", "/bookings", self.patient, expected=201,
            json=body, headers={"Idempotency-Key": str(uuid.uuid4())},
        )  # fmt: skip
        self.ids["visit"] = f"visit-{visit['visit_id']}"
        self.ids["registration_bill"] = f"bill-{visit['bill_id']}"
        self.log(self.patient, "预约挂号", f"号源 {slot_id}，挂号费 {visit['fee_fen'] / 100:.2f} 元，待支付")
        # The booking answers as soon as the slot is held; the payment link comes once the bill is open.
        return await self.call("GET", f"/visits/{visit['visit_id']}/payment", self.patient)

    async def pay(self, bill_id: str, what: str) -> None:
        await self.call("POST", f"/sandbox/cashier/{bill_id}/pay", self.patient)
        bill = await self.until(
            f"{what}到账", lambda: self.call("GET", f"/bills/{bill_id}", self.patient), lambda b: b["status"] == "paid"
        )
        self.log(
            self.patient,
            f"支付{what}",
            f"{bill['amount_fen'] / 100:.2f} 元（沙箱渠道回调），交易号 {bill['transaction_id']}",
        )

    async def visit_stage(self, visit_id: str, stage: str, user: str) -> dict[str, Any]:
        return await self.until(
            f"复诊进入 {stage}",
            lambda: self.call("GET", f"/visits/{visit_id}", user),
            lambda v: v["stage"] == stage,
        )

    # --- the consult ---

    async def consult(self, visit_id: str) -> str:
        # The doctor's list is the read model the flow writes just after its own state moves on: poll, like the app.
        await self.until(
            "出现在医生的待接诊列表",
            lambda: self.call("GET", "/visits", self.doctor, params={"stage": "waiting_doctor"}),
            lambda waiting: visit_id in {v["visit_id"] for v in waiting},
        )
        inbox = await self.call("GET", "/me/notifications", self.doctor)
        self.log(self.doctor, "收到接诊通知", inbox["items"][0]["body"] if inbox.get("items") else "")
        await self.call("POST", f"/visits/{visit_id}/accept", self.doctor)
        self.log(self.doctor, "接诊", visit_id)
        await self.chat(visit_id)
        await self.call("PUT", f"/visits/{visit_id}/record", self.doctor, json=RECORD)
        self.log(self.doctor, "书写中医病历", f"{RECORD['tcm_disease']} · {RECORD['tcm_syndrome']}")
        created = await self.call(
            "POST", f"/visits/{visit_id}/prescriptions", self.doctor, expected=201, json=PRESCRIPTION
        )
        prescription_id = created["prescription_id"]
        self.ids["prescription"] = f"rx-{prescription_id}"
        detail = await self.until(
            "前置审方",
            lambda: self.call("GET", f"/prescriptions/{prescription_id}", self.doctor),
            lambda d: d["state"]["check"] is not None,
        )
        check = detail["state"]["check"]
        findings = "；".join(f"{f['code']}({f['severity']}) {f['message']}" for f in check["findings"]) or "无"
        self.log("rules", f"前置审方：{check['verdict']}", findings)
        reason = "患者久病脾虚，党参加量以益气健脾" if check["verdict"] == "sign_again" else None
        signed = await self.call("POST", f"/prescriptions/{prescription_id}/sign", self.doctor, json={"reason": reason})
        self.log(
            self.doctor, "医生签名" + ("（超量双签）" if reason else ""), f"{len(signed['doctor_signatures'])} 个签名"
        )
        await self.call("POST", f"/visits/{visit_id}/record/sign", self.doctor)
        record = await self.call("GET", f"/visits/{visit_id}/record", self.patient)
        if not (record["signature_state"] or {}).get("valid"):
            raise JourneyError(f"the signed record does not verify: {record['signature_state']}")
        self.log(self.doctor, "签署病历", "SM2 电子签名 + 可信时间戳，病历锁定；患者查看时验证通过")
        await self.call("POST", f"/visits/{visit_id}/finish", self.doctor)
        self.log(self.doctor, "结束复诊", visit_id)
        return prescription_id

    async def chat(self, visit_id: str) -> None:
        """A few messages of the consult; the apps receive them over the chat WebSocket, the history keeps them."""
        for role, text in CHAT:
            await self.call(
                "POST",
                f"/visits/{visit_id}/messages",
                self.patient if role == "patient" else self.doctor,
                expected=201,
                json={"body": text, "client_msg_id": str(uuid.uuid4())},
            )
        history = await self.call("GET", f"/visits/{visit_id}/messages", self.patient)
        for message in history["items"][-len(CHAT) :]:
            who = self.patient if message["sender_role"] == "patient" else self.doctor
            self.log(who, "问诊消息", message["body"])

    async def review(self, prescription_id: str) -> None:
        queue = await self.call("GET", "/prescriptions", self.pharmacist, params={"stage": "awaiting_review"})
        if prescription_id not in {p["prescription_id"] for p in queue}:
            raise JourneyError("the prescription is not in the pharmacist's review queue")
        state = await self.call(
            "POST", f"/prescriptions/{prescription_id}/review", self.pharmacist, json={"approve": True}
        )
        if state["stage"] != "awaiting_confirmation":
            raise JourneyError(f"review: {state['stage']}")
        self.log(self.pharmacist, "药师审方通过", f"签名摘要 {state['pharmacist_signature']['digest'][:16]}…")
        checks = await self.call("GET", f"/prescriptions/{prescription_id}/signatures", self.patient)
        if not checks or not all(check["valid"] for check in checks):
            raise JourneyError(f"signatures do not verify: {checks}")
        self.log(
            self.patient,
            "验证处方电子签名",
            f"{len(checks)} 个 SM2 签名有效，可信时间戳 {checks[-1]['tsa']} {checks[-1]['timestamped_at']}",
        )

    async def confirm_and_pay(self, prescription_id: str, identity: dict[str, str]) -> None:
        state = await self.call(
            "POST", f"/prescriptions/{prescription_id}/confirm", self.patient,
            json={"pickup": "delivery", "address": "北京市东城区东直门内南小街16号", "recipient": identity["name"],
                  "phone": identity["phone"]},
        )  # fmt: skip
        self.log(self.patient, "确认处方，选择配送到家", f"药费 {state['total_fen'] / 100:.2f} 元")
        self.ids["prescription_bill"] = f"bill-{state['bill_id']}"
        await self.pay(state["bill_id"], "药费")

    async def fulfil(self, prescription_id: str) -> None:
        self.ids["fulfilment"] = f"fulfil-{prescription_id}"
        await self.until(
            "药房接单",
            lambda: self.call("GET", f"/prescriptions/{prescription_id}", self.pharmacist),
            lambda d: (d.get("fulfilment") or {}).get("pharmacy_order_no") is not None,
        )
        await self.call("POST", f"/prescriptions/{prescription_id}/dispense", self.pharmacist, json={"approve": True})
        self.log(self.pharmacist, "调剂复核并发药", prescription_id)
        shipped = await self.until(
            "快递揽收",
            lambda: self.call("GET", f"/prescriptions/{prescription_id}", self.patient),
            lambda d: (d.get("fulfilment") or {}).get("waybill_no") is not None,
        )
        waybill = shipped["fulfilment"]["waybill_no"]
        for status in ("picked_up", "in_transit", "delivered"):
            await self.call("POST", f"/sandbox/courier/{waybill}/advance", self.admin, json={"status": status})
        await self.until(
            "送达",
            lambda: self.call("GET", f"/prescriptions/{prescription_id}", self.patient),
            lambda d: (d.get("fulfilment") or {}).get("stage") == "delivered",
        )
        self.log("courier", "配送完成", f"运单 {waybill}：揽收 → 运输 → 送达（物流回调）")
        code = (await self.call("GET", f"/prescriptions/{prescription_id}/pickup-code", self.patient))["pickup_code"]
        result = await self.call(
            "POST", f"/prescriptions/{prescription_id}/sign-off", self.patient, json={"pickup_code": code}
        )
        if not result["accepted"]:
            raise JourneyError("the right pickup code was refused")
        done = await self.until(
            "处方完成",
            lambda: self.call("GET", f"/prescriptions/{prescription_id}", self.patient),
            lambda d: d["state"]["stage"] == "completed",
        )
        self.log(self.patient, "凭提货码签收", f"处方状态 {done['state']['stage']}")

    # --- after the visit ---

    async def evaluate(self, ratings: dict[str, Any]) -> dict[str, Any]:
        """The patient rates this journey's visit (8.6.7)."""
        visit_id = self.ids["visit"].removeprefix("visit-")
        created = await self.call("POST", f"/visits/{visit_id}/evaluation", self.patient, expected=201, json=ratings)
        stars = f"医生 {ratings['doctor_rating']} 星、科室 {ratings['department_rating']} 星、医院 {ratings['hospital_rating']} 星"
        self.log(
            self.patient,
            "评价本次复诊",
            f"{stars}；{'差评，已提醒管理员跟进' if created['handling'] == 'pending' else '公开显示'}",
        )
        return created

    # --- supervision ---

    async def report_to_supervision(self) -> dict[str, dict[str, Any]]:
        """An admin uploads today's records to the supervision platform (8.6.6) and waits for both uploads to end;
        the platform's answers for this journey's visit and prescription, by record id."""
        day = datetime.now(SHANGHAI).date().isoformat()
        # The hourly Schedule may be uploading the day right now: ask again once that run ended.
        await self.until(
            "监管数据上传开始",
            lambda: self.call("POST", "/admin/supervision/uploads", self.admin, expected=(202, 409), json={"day": day}),
            lambda answer: "workflow_ids" in answer,
        )
        runs = await self.until(
            "监管数据上传完成",
            lambda: self.call("GET", "/admin/supervision/uploads", self.admin, params={"day": day}),
            lambda runs: all(run["status"] == "completed" for run in runs),
        )
        answers = {}
        for record_id in (self.ids["visit"].removeprefix("visit-"), self.ids["prescription"].removeprefix("rx-")):
            page = await self.call("GET", "/admin/supervision/records", self.admin, params={"record_id": record_id})
            answers.update({item["record_id"]: item for item in page["items"]})
        for kind, name in KIND_NAMES.items():
            mine = [a for a in answers.values() if a["kind"] == kind]
            if not mine:
                raise JourneyError(f"the {kind} record was not uploaded")
            totals = next(run["totals"] for run in runs if run["kind"] == kind)
            verdict = "已接收" if mine[0]["status"] == "accepted" else f"被拒绝：{mine[0]['reason']}"
            self.log(
                self.admin,
                f"上传监管平台：{name}",
                f"本次记录{verdict}（受理号 {mine[0]['platform_ref']}）；当日共检查 {totals['examined']} 条，"
                f"新接收 {totals['accepted']}、拒绝 {totals['rejected']}、未变化 {totals['unchanged']}",
            )
        return answers

    async def happy_path(self, identity: dict[str, str], doctor_id: str, disease_code: str, slot_skip: int = 0) -> None:
        await self.register_patient(identity, disease_code)
        visit = await self.book(await self.free_slot(doctor_id, disease_code, slot_skip))
        await self.pay(visit["bill_id"], "挂号费")
        await self.visit_stage(visit["visit_id"], "waiting_doctor", self.patient)
        prescription_id = await self.consult(visit["visit_id"])
        await self.review(prescription_id)
        await self.confirm_and_pay(prescription_id, identity)
        await self.fulfil(prescription_id)

    # --- unhappy paths ---

    async def unpaid_bill_closes(self, doctor_id: str, disease_code: str, slot_skip: int = 0) -> None:
        slot_id = await self.free_slot(doctor_id, disease_code, slot_skip)
        visit = await self.book(slot_id)
        self.log(self.patient, "未支付，等待支付时限", f"截止 {visit['pay_deadline']}")
        await self.visit_stage(visit["visit_id"], "cancelled", self.patient)
        bill = await self.call("GET", f"/bills/{visit['bill_id']}", self.patient)
        if bill["status"] != "closed":
            raise JourneyError(f"bill after the window: {bill['status']}")
        slots = await self.http.get(f"/api/v1/doctors/{doctor_id}/slots", params={"date": visit_day(visit)})
        status = {s["id"]: s["status"] for s in slots.json()}.get(slot_id)
        if status != "open":
            raise JourneyError(f"slot after the window: {status}")
        self.log("system", "订单超时自动关闭，号源已释放", f"{visit['bill_id']} closed；号源 {slot_id} open")

    async def doctor_aborts(self, doctor_id: str, disease_code: str, slot_skip: int = 0) -> None:
        visit = await self.book(await self.free_slot(doctor_id, disease_code, slot_skip))
        await self.pay(visit["bill_id"], "挂号费")
        await self.visit_stage(visit["visit_id"], "waiting_doctor", self.patient)
        await self.call("POST", f"/visits/{visit['visit_id']}/accept", self.doctor)
        ended = await self.call(
            "POST", f"/visits/{visit['visit_id']}/abort", self.doctor,
            json={"reason": "症状提示需线下检查，不宜在线复诊", "advice": "请尽快到消化内科门诊就诊。"},
        )  # fmt: skip
        self.log(self.doctor, "中止复诊", ended["abort_reason"])
        bill = await self.until(
            "挂号费退款",
            lambda: self.call("GET", f"/bills/{visit['bill_id']}", self.patient),
            lambda b: b["refunded_fen"] == b["amount_fen"],
        )
        self.ids["refund"] = f"refund-{visit['bill_id']}-1"
        self.log("system", "挂号费原路退回", f"{bill['refunded_fen'] / 100:.2f} 元")

    # --- money ---

    async def insured_visit_refunded(self, doctor_id: str, disease_code: str, slot_skip: int = 0) -> dict[str, Any]:
        """医保 at payment and back: the registration fee is split by the 医保 platform (pooled fund, personal account,
        self-pay: to the fen), only the self-pay part is paid at the channel, the e-invoice is issued; the patient
        cancels, the 医保 part goes back through the platform (2208) and the rest along the channel, and the invoice
        is reversed in red. Answers with the bill as it ends."""
        insurance = {"ec_token": DEMO_EC_TOKEN, "use_account": False}
        visit = await self.book(await self.free_slot(doctor_id, disease_code, slot_skip), insurance)
        bill_id = visit["bill_id"]
        bill = await self.call("GET", f"/bills/{bill_id}", self.patient)
        part = bill["insurance"]
        if part is None or part["status"] != "settled":
            raise JourneyError(f"the registration fee was not settled by 医保: {bill}")
        if part["fund_fen"] + part["account_fen"] + part["cash_fen"] != bill["total_fen"] != 0:
            raise JourneyError(f"the 医保 split does not add up: {part} against {bill['total_fen']}")
        self.log(
            "insurance",
            "医保结算（2207）",
            f"合计 {_yuan(bill['total_fen'])} 元 = 统筹基金 {_yuan(part['fund_fen'])} + 个人账户 {_yuan(part['account_fen'])}"
            f" + 个人自付 {_yuan(part['cash_fen'])}（结算号 {part['setl_id']}）",
        )
        await self.pay(bill_id, "挂号费个人自付部分")
        await self.visit_stage(visit["visit_id"], "waiting_doctor", self.patient)
        issued = await self.until(
            "电子票据开具",
            lambda: self.call("GET", f"/bills/{bill_id}", self.patient),
            lambda b: b["invoice"] is not None,
        )
        self.ids["invoice"] = f"invoice-{bill_id}"
        self.log(
            "system",
            "开具电子票据",
            f"票据代码 {issued['invoice']['invoice_code']} 号码 {issued['invoice']['invoice_no']}",
        )

        await self.call(
            "POST", f"/visits/{visit['visit_id']}/cancel", self.patient, json={"reason": "临时有事，无法就诊"}
        )
        self.log(self.patient, "取消预约", "挂号费全额原路退回")
        ended = await self.until(
            "医保与自付部分退回",
            lambda: self.call("GET", f"/bills/{bill_id}", self.patient),
            lambda b: b["refunded_fen"] == b["amount_fen"] and b["insurance_refunded_fen"] == b["insurance_fen"],
        )
        [refund] = await self.call("GET", f"/bills/{bill_id}/refunds", self.patient)
        self.ids["refund"] = f"refund-{bill_id}-1"
        inbox = await self.call("GET", "/me/notifications", self.patient)
        eta = next((n["body"] for n in inbox.get("items", []) if n["template"] == "refund_started"), "")
        self.log(
            "system",
            "退款：医保部分经平台撤销结算（2208），自付部分原路退回",
            f"医保 {_yuan(refund['insurance_fen'])} 元，渠道 {_yuan(refund['channel_fen'])} 元。{eta}",
        )
        reversed_ = await self.until(
            "电子票据冲红",
            lambda: self.call("GET", f"/bills/{bill_id}", self.patient),
            lambda b: (b["invoice"] or {}).get("red_invoice_no") is not None,
        )
        self.log("system", "电子票据冲红", f"红字票据号码 {reversed_['invoice']['red_invoice_no']}")
        if reversed_["refunded_fen"] != ended["refunded_fen"]:
            raise JourneyError(f"refunded again after the refund ended: {reversed_}")
        return reversed_


def _yuan(fen: int) -> str:
    return f"{fen / 100:.2f}"


def visit_day(visit: dict[str, Any]) -> str:
    return datetime.fromisoformat(visit["starts_at"]).astimezone(SHANGHAI).date().isoformat()
