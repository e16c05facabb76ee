"""Endpoints the payment channels, the 医保 platform and couriers call. No bearer token: each request is verified by
its signature."""

from __future__ import annotations

from fastapi import APIRouter, Request

from activities.adapters.insurance import MedicalInsurance
from api.deps import ContextDep, SessionDep
from api.errors import Problem, problem_responses
from api.services.callbacks import (
    deliver_courier_event,
    deliver_insurance_authorization,
    deliver_insurance_notice,
    deliver_payment_notice,
)

router = APIRouter(prefix="/callbacks", tags=["callbacks"])


@router.post("/payments/{channel}", responses=problem_responses(401, 404), summary="支付渠道回调")
async def payment_callback(channel: str, request: Request, ctx: ContextDep) -> dict[str, str]:
    # `channel` names the channel, or the campus whose merchant's notify URL this is (each verifies its own).
    payment = ctx.adapters.merchants.for_callback(channel)
    if payment is None:
        raise Problem(404, "NOT_FOUND", "未知支付渠道", f"未配置支付渠道 {channel}")
    await deliver_payment_notice(ctx.temporal, payment, request.headers, await request.body())
    return {"code": "SUCCESS", "message": "成功"}


def _insurance(name: str, ctx: ContextDep) -> MedicalInsurance:
    if name != ctx.settings.adapter_insurance:
        raise Problem(404, "NOT_FOUND", "未知医保平台", f"未配置医保平台接口 {name}")
    return ctx.adapters.insurance


@router.post(
    "/insurance/{name}/authorizations", responses=problem_responses(401, 404, 409), summary="医保移动支付授权回调"
)
async def insurance_authorization_callback(
    name: str, request: Request, ctx: ContextDep, session: SessionDep
) -> dict[str, str]:
    """The 医保 platform reports the patient's payment authorization (payAuthNo) for a bill paid by 医保移动支付."""
    await deliver_insurance_authorization(
        ctx.temporal, session, ctx.cipher, _insurance(name, ctx), request.headers, await request.body()
    )
    return {"code": "SUCCESS", "message": "成功"}


@router.post("/insurance/{name}/notices", responses=problem_responses(401, 404), summary="医保结算结果通知")
async def insurance_notice_callback(
    name: str, request: Request, ctx: ContextDep, session: SessionDep
) -> dict[str, str]:
    """The 医保 platform's settlement notice of a mobile order (the bill's flow confirms it with 6301)."""
    await deliver_insurance_notice(ctx.temporal, session, _insurance(name, ctx), request.headers, await request.body())
    return {"code": "SUCCESS", "message": "成功"}


@router.post("/couriers/{name}", responses=problem_responses(401, 404), summary="物流轨迹回调")
async def courier_callback(name: str, request: Request, ctx: ContextDep, session: SessionDep) -> dict[str, str]:
    if name != ctx.settings.adapter_courier:
        raise Problem(404, "NOT_FOUND", "未知物流公司", f"未配置物流公司 {name}")
    await deliver_courier_event(ctx.temporal, session, ctx.adapters.courier, request.headers, await request.body())
    return {"code": "SUCCESS", "message": "成功"}
