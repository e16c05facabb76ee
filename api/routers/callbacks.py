"""Endpoints the payment channels and couriers call. No bearer token: each request is verified by its signature."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import ContextDep, SessionDep
from api.errors import Problem, problem_responses
from api.services.callbacks import deliver_courier_event, deliver_payment_notice

router = APIRouter(prefix="/callbacks", tags=["callbacks"])


@router.post("/payments/{channel}", responses=problem_responses(401, 404), summary="支付渠道回调")
async def payment_callback(channel: str, request: Request, ctx: ContextDep) -> dict[str, str]:
    # `channel` names the channel, or the campus whose merchant's notify URL this is (each verifies its own).
    payment = ctx.adapters.merchants.for_callback(channel)
    if payment is None:
        raise Problem(404, "NOT_FOUND", "未知支付渠道", f"未配置支付渠道 {channel}")
    await deliver_payment_notice(ctx.temporal, payment, request.headers, await request.body())
    return {"code": "SUCCESS", "message": "成功"}


@router.post("/couriers/{name}", responses=problem_responses(401, 404), summary="物流轨迹回调")
async def courier_callback(name: str, request: Request, ctx: ContextDep, session: SessionDep) -> dict[str, str]:
    if name != ctx.settings.adapter_courier:
        raise Problem(404, "NOT_FOUND", "未知物流公司", f"未配置物流公司 {name}")
    await deliver_courier_event(ctx.temporal, session, ctx.adapters.courier, request.headers, await request.body())
    return {"code": "SUCCESS", "message": "成功"}
