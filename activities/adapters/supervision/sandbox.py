"""Sandbox supervision platform: keeps what it was sent in the sandbox call record and decides deterministically.

A registration is approved unless its institution number was put on `refused`; the decision is reported after
`pending_polls` status queries answered "pending" (0: at the first query), so a test can show the flow waiting.
Uploaded records are checked as a provincial platform checks them (a valid ID card, the doctor's practice licence
number, a diagnosis for a concluded revisit, the pharmacist's review for a prescription past review); the call record
keeps each record's id and digest, never its contents.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.errors import AdapterRefusal
from activities.adapters.sandbox import CALLS, recorder_for
from core.settings import Settings
from models import idcard
from models.institution import (
    InstitutionFiling,
    InstitutionRecord,
    RegistrationReceipt,
    RegistrationState,
    RegistrationStatus,
)
from models.supervision import RecordOutcome, SupervisionKind, SupervisionRecord, UploadReceipt

SYSTEM = "supervision"
_CODE = re.compile(r"[0-9A-Za-z-]{4,32}")
REFUSAL_REASON = "机构执业许可信息与卫生健康行政部门登记不符，请核对后重新提交"


def check_filing(filing: InstitutionFiling) -> None:
    """What the platform refuses outright (a real one checks the same before it queues a filing for review)."""
    if not _CODE.fullmatch(filing.code):
        raise AdapterRefusal("INVALID_FILING", "机构编号格式不正确")
    if not filing.name.strip() or not filing.licence_no.strip():
        raise AdapterRefusal("INVALID_FILING", "机构名称和执业许可证登记号不能为空")
    if not filing.access_ips:
        raise AdapterRefusal("INVALID_FILING", "至少须登记一个接入 IP 地址")
    for address in filing.access_ips:
        try:
            ipaddress.ip_network(address, strict=False)
        except ValueError:
            raise AdapterRefusal("INVALID_FILING", f"接入 IP 地址“{address}”无效") from None


MAX_RECORDS = 1000
# Prescription stages that come after the pharmacist's approval.
_REVIEWED_STAGES = {"awaiting_confirmation", "awaiting_payment", "fulfilling", "completed"}


def check_record(record: SupervisionRecord) -> str | None:
    """Why the platform rejects a record (None: it accepts it)."""
    body = record.body
    patient, doctor = body.get("patient") or {}, body.get("doctor") or {}
    if not patient.get("name") or not idcard.is_valid(patient.get("id_card_no") or ""):
        return "患者姓名或身份证号缺失或无效"
    if not doctor.get("name") or not doctor.get("licence_no"):
        return "缺少医师姓名或医师执业证书编码"
    if record.kind is SupervisionKind.REVISIT:
        if body.get("stage") == "finished" and not (body.get("record") or {}).get("tcm_disease"):
            return "已完成的复诊缺少病历中医诊断"
    else:
        if not body.get("items"):
            return "处方缺少药品明细"
        if body.get("stage") in _REVIEWED_STAGES and not (body.get("review") or {}).get("licence_no"):
            return "审核通过的处方缺少审方药师信息"
    return None


class SandboxSupervision:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._recorder = recorder_for(sessions, settings)
        self.refused: set[str] = set()
        self.pending_polls = 0
        self._polls: dict[str, int] = {}

    async def register_institution(self, *, idempotency_key: str, filing: InstitutionFiling) -> RegistrationReceipt:
        check_filing(filing)

        async def perform(_: AsyncSession) -> dict[str, Any]:
            receipt = RegistrationReceipt(platform_ref=f"SBJG{uuid.uuid4().hex[:16].upper()}", received_at=_now())
            return {**receipt.model_dump(mode="json"), "code": filing.code, "name": filing.name, "kind": filing.kind}

        request = filing.model_dump(mode="json")
        response = await self._recorder.once(SYSTEM, "register", idempotency_key, request, perform)
        return RegistrationReceipt.model_validate(response)

    async def registration_status(self, *, idempotency_key: str, platform_ref: str) -> RegistrationStatus:
        await self._recorder.gate(SYSTEM, "status", idempotency_key)
        filed = await self._filed(CALLS.c.response["platform_ref"].astext == platform_ref)
        if filed is None:
            raise AdapterRefusal("UNKNOWN_REGISTRATION", f"监管平台没有编号为 {platform_ref} 的登记申请")
        polls = self._polls.get(platform_ref, 0)
        if polls < self.pending_polls:
            self._polls[platform_ref] = polls + 1
            return RegistrationStatus(state=RegistrationState.PENDING)
        if filed["code"] in self.refused:
            return RegistrationStatus(state=RegistrationState.REJECTED, reason=REFUSAL_REASON, decided_at=_now())
        return RegistrationStatus(state=RegistrationState.APPROVED, decided_at=_now())

    async def lookup_institution(self, *, idempotency_key: str, code: str) -> InstitutionRecord:
        await self._recorder.gate(SYSTEM, "lookup", idempotency_key)
        filed = await self._filed(CALLS.c.request["code"].astext == code)
        if filed is None:
            return InstitutionRecord(found=False, code=code)
        return InstitutionRecord(
            found=True, code=code, name=filed["name"], kind=filed["kind"], approved=code not in self.refused
        )

    async def upload_records(
        self, *, idempotency_key: str, kind: SupervisionKind, records: list[SupervisionRecord]
    ) -> UploadReceipt:
        if not records or len(records) > MAX_RECORDS:
            raise AdapterRefusal("INVALID_UPLOAD", f"每次上传 1～{MAX_RECORDS} 条记录")
        if any(record.kind is not kind for record in records):
            raise AdapterRefusal("INVALID_UPLOAD", "一次上传只能包含同一类数据")

        async def perform(_: AsyncSession) -> dict[str, Any]:
            outcomes = []
            for record in records:
                reason = check_record(record)
                outcomes.append(
                    RecordOutcome(
                        record_id=record.record_id,
                        accepted=reason is None,
                        code=None if reason is None else "INVALID_RECORD",
                        reason=reason,
                    )
                )
            receipt = UploadReceipt(platform_ref=f"SBSC{uuid.uuid4().hex[:16].upper()}", outcomes=outcomes)
            return receipt.model_dump(mode="json")

        request = {"kind": kind.value, "records": [{"record_id": r.record_id, "digest": r.digest} for r in records]}
        response = await self._recorder.once(SYSTEM, "upload", idempotency_key, request, perform)
        return UploadReceipt.model_validate(response)

    async def held(self, kind: SupervisionKind, record_id: str) -> str | None:
        """The digest of the version of a record the platform holds (the last it accepted), if any."""
        accepted = [{"record_id": record_id, "accepted": True}]
        async with self._sessions() as session:
            request = await session.scalar(
                select(CALLS.c.request)
                .where(
                    CALLS.c.system == SYSTEM,
                    CALLS.c.operation == "upload",
                    CALLS.c.request["kind"].astext == kind.value,
                    CALLS.c.response["outcomes"].contains(accepted),
                )
                .order_by(CALLS.c.id.desc())
                .limit(1)
            )
        if request is None:
            return None
        return next(r["digest"] for r in request["records"] if r["record_id"] == record_id)

    async def _filed(self, condition: Any) -> dict[str, Any] | None:
        """The latest registration the platform received that matches."""
        async with self._sessions() as session:
            return await session.scalar(
                select(CALLS.c.response)
                .where(CALLS.c.system == SYSTEM, CALLS.c.operation == "register", condition)
                .order_by(CALLS.c.id.desc())
                .limit(1)
            )


def _now() -> datetime:
    return datetime.now(UTC)
