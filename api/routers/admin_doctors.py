"""Doctors' public profiles and fees, kept by admins (8.1.1.3; 8.6.1 c qualification-based fees, d staff info)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from api.auth import Actor
from api.deps import SessionDep
from api.errors import problem_responses
from api.permissions import require_permission
from api.queries import catalogue
from api.schemas.catalogue import DoctorOut
from api.schemas.doctors import DoctorPatch
from api.services.audit import audit
from api.services.doctors import update_doctor
from models.permissions import Permission

router = APIRouter(prefix="/admin/doctors", tags=["doctors"])


@router.patch(
    "/{doctor_id}",
    response_model=DoctorOut,
    responses=problem_responses(401, 403, 404, 422),
    summary="修改医生信息与收费",
)
async def edit_doctor(
    doctor_id: Annotated[str, Path(max_length=40)],
    body: DoctorPatch,
    request: Request,
    actor: Annotated[Actor, Depends(require_permission(Permission.DOCTOR_MANAGE))],
    session: SessionDep,
) -> DoctorOut:
    """Title, specialties, introduction, photo (null removes it), service types with a fee each, active flag.

    An inactive doctor is hidden from the public doctor lists, their slots show as unavailable and no new session can
    be published for them. Sessions already published are not changed: cancel them through leave (停诊).
    """
    doctor, changes = await update_doctor(session, doctor_id, body)
    if changes:
        audit(session, actor, "doctor.updated", "doctor", doctor.id, detail={"changes": changes}, request=request)
        await session.commit()
    row = await catalogue.get_doctor(session, doctor_id)
    assert row is not None
    return DoctorOut.of(*row)
