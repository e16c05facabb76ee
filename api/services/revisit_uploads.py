"""Records patients upload as evidence of an offline diagnosis (8.1.2.2 a), and who may see and review them.

Files are checked and sealed as every upload is (api/services/sealed_files.py), bound to their row; the SM3 digest
goes on the evidence ledger before the row is stored. Who may read one: its patient; the doctors of the disease's
department, who review it; the doctors treating a visit of that patient (the preview before accepting); admins.
Everyone else gets 404. Every read of the file is audited.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth import Actor
from api.context import AppContext
from api.errors import Problem
from api.schemas.revisit_uploads import UploadOut
from api.services.access import treated_by
from api.services.audit import audit
from api.services.sealed_files import MIB, FileRule, seal_file, unseal
from core.ledger.service import EvidenceLedger
from models.common import HOSPITAL_TZ, Role
from models.ledger import Evidence
from models.tables import Disease, Doctor, RevisitUpload, Visit

RULE = FileRule("就诊资料", 10 * MIB, frozenset({"image/jpeg", "image/png", "image/webp", "application/pdf"}))


def _aad(upload_id: str) -> str:
    return f"revisit_uploads.data_enc:{upload_id}"


def upload_out(row: RevisitUpload) -> UploadOut:
    fields = row.model_dump(exclude={"id", "data_enc", "reviewed_by"})
    return UploadOut.model_validate({**fields, "upload_id": row.id, "url": f"/api/v1/revisit-uploads/{row.id}/file"})


def check_visit_day(visited_on: date, window_days: int) -> None:
    """The record must be of an offline visit that could still count: not in the future, not before the window."""
    today = datetime.now(HOSPITAL_TZ).date()
    if visited_on > today:
        raise Problem(422, "VISIT_DATE_IN_FUTURE", "就诊日期不正确", "就诊日期不能晚于今天。")
    if visited_on < today - timedelta(days=window_days):
        raise Problem(
            422,
            "VISIT_DATE_OUT_OF_WINDOW",
            "就诊时间超出复诊时限",
            f"仅近{window_days}天内的线下就诊资料可作为复诊依据。",
            window_days=window_days,
        )


async def store_upload(
    ctx: AppContext,
    actor: Actor,
    disease_code: str,
    visited_on: date,
    content_type: str,
    data: bytes,
    request: Request,
) -> RevisitUpload:
    """Check, seal, put the digest on the ledger, then store the row (audited). 404 for an unknown disease."""
    async with ctx.sessions() as session:
        if await session.get(Disease, disease_code) is None:
            raise Problem(404, "NOT_FOUND", "病种不存在", f"病种 {disease_code} 不存在")
    check_visit_day(visited_on, ctx.settings.revisit_window_days)
    upload_id = f"upl-{uuid.uuid4().hex}"
    sealed = seal_file(ctx.settings.pii_key, _aad(upload_id), RULE, content_type, data)
    receipt = await EvidenceLedger(ctx.sessions).append(
        Evidence(kind="revisit.upload", subject=f"revisit_upload:{upload_id}", digest=sealed.sm3)
    )
    row = RevisitUpload(
        id=upload_id,
        patient_id=actor.ref or "",
        disease_code=disease_code,
        kind="pdf" if sealed.content_type == "application/pdf" else "image",
        content_type=sealed.content_type,
        size_bytes=sealed.size_bytes,
        sm3=sealed.sm3,
        data_enc=sealed.data_enc,
        visited_on=visited_on,
        ledger_seq=receipt.seq,
    )
    async with ctx.sessions() as session:
        session.add(row)
        audit(
            session,
            actor,
            "revisit_upload.create",
            "revisit_upload",
            upload_id,
            detail={"patient_id": row.patient_id, "disease_code": disease_code, "ledger_seq": receipt.seq},
            request=request,
        )
        await session.commit()
        await session.refresh(row)
    return row


async def may_review(session: AsyncSession, doctor_id: str | None, disease_code: str) -> bool:
    """Doctors of the disease's department review its uploads."""
    found = await session.scalar(
        select(col(Doctor.id))
        .join(Disease, col(Disease.department_id) == col(Doctor.department_id))
        .where(col(Doctor.id) == doctor_id, col(Disease.code) == disease_code)
    )
    return found is not None


async def treats_patient(session: AsyncSession, doctor_id: str | None, patient_id: str) -> bool:
    """Whether the doctor treats (or treated) a visit of the patient, as its doctor or an invited one."""
    found = await session.scalar(
        select(col(Visit.id)).where(col(Visit.patient_id) == patient_id, treated_by(doctor_id)).limit(1)
    )
    return found is not None


async def readable_upload(session: AsyncSession, actor: Actor, upload_id: str) -> RevisitUpload:
    row = await session.get(RevisitUpload, upload_id)
    if row is not None and (
        actor.role is Role.ADMIN
        or (actor.role is Role.PATIENT and row.patient_id == actor.ref)
        or (
            actor.role is Role.DOCTOR
            and (
                await may_review(session, actor.ref, row.disease_code)
                or await treats_patient(session, actor.ref, row.patient_id)
            )
        )
    ):
        return row
    raise Problem(404, "NOT_FOUND", "未找到", "上传资料不存在")


def open_file(ctx: AppContext, row: RevisitUpload) -> bytes:
    return unseal(ctx.settings.pii_key, _aad(row.id), row.data_enc)


async def uploads_for(
    session: AsyncSession, actor: Actor, status: str | None, disease_code: str | None, limit: int, offset: int
) -> list[RevisitUpload]:
    """A patient's own uploads; for a doctor, those of their department's diseases (to review); newest first."""
    query = select(RevisitUpload).order_by(col(RevisitUpload.uploaded_at).desc()).limit(limit).offset(offset)
    if actor.role is Role.PATIENT:
        query = query.where(col(RevisitUpload.patient_id) == actor.ref)
    elif actor.role is Role.DOCTOR:
        department = select(col(Doctor.department_id)).where(col(Doctor.id) == actor.ref).scalar_subquery()
        diseases = select(col(Disease.code)).where(col(Disease.department_id) == department)
        query = query.where(col(RevisitUpload.disease_code).in_(diseases))
    elif actor.role is not Role.ADMIN:
        return []
    if status is not None:
        query = query.where(col(RevisitUpload.status) == status)
    if disease_code is not None:
        query = query.where(col(RevisitUpload.disease_code) == disease_code)
    return list((await session.execute(query)).scalars())
