"""Endpoints for integrated systems (8.5.8), behind the integration gateway (api/gateway): SM2-signed calls of
registered applications, each endpoint requiring one scope.

The first one serves partner pharmacies: a prescription a pharmacist has approved, without any patient PII (what a
pharmacy needs to deliver reaches it through the pharmacy adapter's order, not through this read).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request
from pydantic import BaseModel

from api.deps import ContextDep
from api.errors import Problem, problem_responses
from api.gateway import protocol
from api.gateway.middleware import IntegrationCaller
from api.gateway.refusals import Refusal, handle_refusal
from api.resilience import POSTGRES_OUTAGES, Breakers
from models.integration import IntegrationScope
from models.prescription import PrescriptionDraft, RxStage

router = APIRouter(prefix="/integration", tags=["integration"])

_RESPONSES = problem_responses(400, 401, 403, 404, 429, 503)


async def _caller(
    request: Request,
    # Declared for the API documentation; the gateway has checked all four before any dependency runs.
    app_id: Annotated[str, Header(alias=protocol.APP_ID, description="接入应用编号")],
    timestamp: Annotated[
        str, Header(alias=protocol.TIMESTAMP, description="Unix 时间（秒），与服务器相差不超过 300 秒")
    ],
    nonce: Annotated[str, Header(alias=protocol.NONCE, description="每个请求唯一的随机数（16–64 位）")],
    signature: Annotated[str, Header(alias=protocol.SIGNATURE, description="对规范请求串的 SM2 签名（DER，Base64）")],
) -> IntegrationCaller:
    caller = getattr(request.state, "integration_caller", None)
    if caller is None:  # only if the gateway were not installed: fail closed
        raise Problem(401, "UNAUTHORIZED", "未认证的接入调用", "该接口仅供经网关验证的接入应用调用。")
    return caller


def require_scope(scope: IntegrationScope) -> Callable[..., Awaitable[IntegrationCaller]]:
    async def dependency(
        request: Request, ctx: ContextDep, caller: Annotated[IntegrationCaller, Depends(_caller)]
    ) -> IntegrationCaller:
        if scope.value not in caller.scopes:
            refusal = Refusal("SCOPE_DENIED", f"本应用未获授权范围 {scope.value}。", app_id=caller.app_id)
            await handle_refusal(ctx, request.state.breakers, request.scope, refusal)
            raise refusal
        return caller

    return dependency


class PartnerPrescription(BaseModel):
    prescription_id: str
    stage: RxStage
    revision: int
    draft: PrescriptionDraft
    total_fen: int | None
    pickup: str | None
    fulfilment_stage: str | None
    pharmacy_order_no: str | None
    updated_at: datetime


# Only prescriptions a pharmacist has approved (reviewed_by is set by the approving signature) are any pharmacy's
# business; drafts and prescriptions under review are not.
_PRESCRIPTION = """
    SELECT p.id, p.stage, p.revision, p.draft::text AS draft, p.total_fen, p.pickup, p.updated_at,
           f.stage AS fulfilment_stage, f.pharmacy_order_no
      FROM prescriptions p
      LEFT JOIN fulfilments f ON f.prescription_id = p.id
     WHERE p.id = $1 AND p.reviewed_by IS NOT NULL
"""


@router.get(
    "/prescriptions/{prescription_id}",
    response_model=PartnerPrescription,
    responses=_RESPONSES,
    dependencies=[Depends(require_scope(IntegrationScope.RX_READ))],
    summary="读取已审核处方（合作药房）",
)
async def get_prescription(
    # Ids are plain ASCII; anything else (a NUL, say) would only make PostgreSQL refuse the statement.
    prescription_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9._:-]{1,80}$")],
    request: Request,
    ctx: ContextDep,
) -> PartnerPrescription:
    """Scope `rx.read`. The items, doses and usage of a pharmacist-approved prescription, and its fulfilment stage."""
    breakers: Breakers = request.state.breakers
    async with breakers.get("postgresql", ctx.settings, POSTGRES_OUTAGES).guard():
        row = await ctx.pg.fetchrow(_PRESCRIPTION, prescription_id)
    if row is None:
        raise Problem(404, "NOT_FOUND", "处方不存在", "未找到该处方，或处方尚未通过药师审核。")
    return PartnerPrescription(
        prescription_id=row["id"],
        stage=RxStage(row["stage"]),
        revision=row["revision"],
        draft=PrescriptionDraft.model_validate(json.loads(row["draft"])),
        total_fen=row["total_fen"],
        pickup=row["pickup"],
        fulfilment_stage=row["fulfilment_stage"],
        pharmacy_order_no=row["pharmacy_order_no"],
        updated_at=row["updated_at"],
    )
