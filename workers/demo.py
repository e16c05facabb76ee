"""`make demo`: one complete follow-up journey (reported to the supervision platform), two unhappy paths and a 医保
visit, over HTTP against the running dev stack.

Prints a timeline of every step and the flow ids to look up in the Temporal UI; exits 0 only if every step happened.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from urllib.parse import quote

import httpx

from core.settings import get_settings
from workers import devstack
from workers.journey import Journey, JourneyError, Step
from workers.seed import DEMO_HIS_DIAGNOSES, DEMO_IDENTITIES

_ACTORS = {
    "demo-patient": "患者",
    "demo-doctor": "医生",
    "demo-pharmacist": "药师",
    "rules": "审方规则",
    "courier": "物流",
    "insurance": "医保",
    "system": "系统",
    "demo-admin": "管理员",
}


def _print_timeline(title: str, steps: list[Step]) -> None:
    print(f"\n== {title} ==")
    for step in steps:
        who = _ACTORS.get(step.actor, step.actor)
        print(f"  +{step.at_s:6.2f}s  [{who}] {step.what}" + (f" —— {step.detail}" if step.detail else ""))


def _print_flows(ids: dict[str, str], ui: str | None, namespace: str) -> None:
    print("\n  在 Temporal UI 中查看这些流程：")
    for name, workflow_id in ids.items():
        link = f"{ui}/namespaces/{namespace}/workflows/{quote(workflow_id, safe='')}" if ui else ""
        print(f"    {name:<20} {workflow_id}  {link}")


async def run(api: str, ui: str | None, namespace: str) -> int:
    patient = "demo-patient"
    identity = DEMO_IDENTITIES[patient]
    _, disease, doctor_id = DEMO_HIS_DIAGNOSES[patient]
    async with httpx.AsyncClient(base_url=api, timeout=60) as http:
        journeys = [
            (
                "完整复诊流程：实名 → 复诊预判 → 挂号支付 → 接诊开方 → 审方 → 缴费配送 → 签收",
                Journey(http, patient=patient),
            ),
            ("异常流程一：医生中止复诊，挂号费原路退回", Journey(http, patient=patient)),
            ("异常流程二：挂号费超时未支付，订单自动关闭并释放号源", Journey(http, patient=patient)),
            (
                "医保支付：统筹基金/个人账户/个人自付分账，取消后医保与自付部分各自原路退回",
                Journey(http, patient=patient),
            ),
        ]
        happy, aborted, unpaid, insured = (journey for _, journey in journeys)
        try:
            await happy.happy_path(identity, doctor_id, disease)
            await happy.evaluate(
                {
                    "doctor_rating": 5,
                    "department_rating": 5,
                    "hospital_rating": 5,
                    "comment": "李医生问诊细致，药很快就送到了。",
                }
            )
            await happy.report_to_supervision()
            await aborted.doctor_aborts(doctor_id, disease)
            await insured.insured_visit_refunded(doctor_id, disease)
            print("（等待挂号费支付时限到期……）", file=sys.stderr)
            unpaid.wait_s = 180
            await unpaid.unpaid_bill_closes(doctor_id, disease)
        except (JourneyError, httpx.HTTPError) as failure:
            for title, journey in journeys:
                if journey.timeline:
                    _print_timeline(title, journey.timeline)
            print(f"\n演示失败：{failure}", file=sys.stderr)
            return 1
    for title, journey in journeys:
        _print_timeline(title, journey.timeline)
        _print_flows(journey.ids, ui, namespace)
    print("\n演示完成：每一步都已发生。")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="qihuang demo", description="对正在运行的开发环境演示完整就诊流程")
    parser.add_argument("--api", help="API 地址（默认取自 .qihuang/stack.json 或 QIHUANG_API_BASE_URL）")
    args = parser.parse_args()
    settings = get_settings()
    stack = devstack.read_stack_file() or {}
    api = args.api or stack.get("api") or settings.api_base_url
    return asyncio.run(run(api, stack.get("temporal_ui"), settings.temporal_namespace))


if __name__ == "__main__":
    sys.exit(main())
