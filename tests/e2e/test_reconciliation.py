"""Daily reconciliation over the HTTP API with the real activities and the sandbox channel: a finance supervisor
starts a past day, sees its differences (长款, 短款) with their statement lines, re-runs it while one is open, and
resolves the new run's differences, writing one off; a clerk can only look. Finance staff with an e-mail address
(set by themselves or an admin) get each day's result by e-mail too, marked as an alert when anything is off."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from activities.adapters.mailer.sandbox import SandboxMailer
from models.common import HOSPITAL_TZ, Role
from models.tables import AuditEvent, Bill, Notification, Refund, SandboxPayOrder, SandboxRefund
from tests.api.helpers import login, make_user

# A day long past, which nothing else in the session pays on.
DAY = date(2023, 5, 17)
BASE = "/api/v1/reconciliation"


def beijing(hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hh, mm, ss, tzinfo=HOSPITAL_TZ).astimezone(UTC)


async def books_and_channel(sessions: async_sessionmaker[AsyncSession], tag: str) -> dict[str, str]:
    """The day at the sandbox channel and in the platform: one payment each side only, one partly refunded on both."""
    _, patient_id = await make_user(sessions, Role.PATIENT)
    assert patient_id is not None
    numbers = {name: f"e2e-{name}-{tag}" for name in ("both", "channel", "platform", "refund")}
    async with sessions() as session, session.begin():
        for name in ("both", "channel"):
            session.add(
                SandboxPayOrder(out_trade_no=numbers[name], amount_fen=5000, status="SUCCESS",
                                transaction_id=f"TX{name}{tag}", charges=1, paid_at=beijing(9))
            )  # fmt: skip
        for name in ("both", "platform"):
            session.add(
                Bill(id=numbers[name], kind="registration", ref_id=numbers[name], patient_id=patient_id,
                     amount_fen=5000, status="paid", channel="sandbox", paid_at=beijing(9))
            )  # fmt: skip
        await session.flush()
        session.add(
            SandboxRefund(out_refund_no=numbers["refund"], out_trade_no=numbers["both"], amount_fen=1200,
                          status="succeeded", refund_id=f"RF{tag}", created_at=beijing(23, 59, 59))
        )  # fmt: skip
        session.add(
            Refund(id=numbers["refund"], bill_id=numbers["both"], amount_fen=1200, reason="部分退款",
                   requested_by="u-test", status="succeeded", finished_at=beijing(23, 59, 59))
        )  # fmt: skip
    return numbers


async def progress(http: httpx.AsyncClient, headers: dict[str, str], stage: str, round_: int) -> dict:
    for _ in range(300):
        response = await http.get(f"{BASE}/days/sandbox/{DAY}", headers=headers)
        if response.status_code == 200 and (response.json()["stage"], response.json()["round"]) == (stage, round_):
            return response.json()
        await asyncio.sleep(0.1)
    raise AssertionError(f"the day never reached {stage} in round {round_}: {response.text}")


async def items(http: httpx.AsyncClient, headers: dict[str, str], run_id: str, **params: str) -> list[dict]:
    response = await http.get(f"{BASE}/runs/{run_id}/items", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_finance_reconciles_a_day_through_the_api(make_stack, sessions) -> None:
    stack = await make_stack()
    http = stack.http
    numbers = await books_and_channel(sessions, uuid.uuid4().hex[:8])
    finance_user, _ = await make_user(sessions, Role.FINANCE)
    clerk_user, _ = await make_user(sessions, Role.FINANCE)
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    finance, clerk, admin = [await login(http, user) for user in (finance_user, clerk_user, admin_user)]
    level = {"level": "supervisor", "reason": "财务主管"}
    made = await http.put(f"/api/v1/admin/users/{finance_user}/finance-level", json=level, headers=admin)
    assert made.status_code == 200, made.text
    # Where the day's result is mailed: the supervisor sets their own address, an admin the clerk's.
    finance_mail, clerk_mail = (f"caiwu-{uuid.uuid4().hex[:8]}@Hospital.Example" for _ in range(2))
    own = await http.put("/api/v1/me/email", json={"email": finance_mail}, headers=finance)
    assert (own.status_code, own.json()["email_masked"]) == (200, "c***@hospital.example"), own.text
    by_admin = await http.put(f"/api/v1/admin/users/{clerk_user}/email", json={"email": clerk_mail}, headers=admin)
    assert by_admin.status_code == 200, by_admin.text
    assert (await http.get("/api/v1/me", headers=clerk)).json()["email_masked"] == "c***@hospital.example"

    refused = await http.post(f"{BASE}/runs", json={"channel": "paypal", "bill_date": str(DAY)}, headers=finance)
    assert (refused.status_code, refused.json()["code"]) == (422, "UNKNOWN_CHANNEL")
    today = datetime.now(HOSPITAL_TZ).date()
    early = await http.post(f"{BASE}/runs", json={"channel": "sandbox", "bill_date": str(today)}, headers=finance)
    assert (early.status_code, early.json()["code"]) == (409, "DAY_NOT_OVER")

    started = await http.post(f"{BASE}/runs", json={"channel": "sandbox", "bill_date": str(DAY)}, headers=finance)
    assert started.status_code == 202, started.text
    assert started.json()["started"] is True and started.json()["workflow_id"] == "reconcile-sandbox-20230517"
    first = (await progress(http, finance, "awaiting_resolution", 1))["run_id"]

    run = (await http.get(f"{BASE}/runs/{first}", headers=admin)).json()
    assert (run["matched"], run["channel_only"], run["platform_only"], run["open_items"]) == (2, 1, 1, 2)
    # The payment and its refund at 23:59:59 (still this day) agree: counted and totalled, not listed.
    assert (run["matched_payment_fen"], run["matched_refund_fen"]) == (5000, 1200)
    assert (run["channel_payment_fen"], run["channel_refund_fen"]) == (10_000, 1200)
    assert (run["platform_payment_fen"], run["platform_refund_fen"]) == (10_000, 1200)
    listed = (await http.get(f"{BASE}/runs", params={"bill_date": str(DAY)}, headers=finance)).json()
    assert [r["run_id"] for r in listed["items"]] == [first]
    assert len(await items(http, clerk, first)) == 2  # the differences only
    (surplus,) = await items(http, finance, first, outcome="channel_only")
    (shortfall,) = await items(http, finance, first, outcome="platform_only")
    assert (surplus["out_trade_no"], shortfall["out_trade_no"]) == (numbers["channel"], numbers["platform"])
    assert (shortfall["shortfall_fen"], shortfall["platform_record_id"], shortfall["line_no"]) == (
        5000,
        numbers["platform"],
        None,
    )
    source = (await http.get(f"{BASE}/runs/{first}/items/{surplus['item_id']}/source", headers=clerk)).json()
    assert [(line["out_trade_no"], line["line_no"]) for line in source["lines"]] == [
        (numbers["channel"], surplus["line_no"])
    ]
    notices = await _finance_notices(sessions, finance_user)
    assert notices == ["对账差错待处理"]
    mailer = SandboxMailer(sessions, stack.settings)
    for address in (finance_mail, clerk_mail):
        (mail,) = await _mails(mailer, address, 1)
        assert mail["subject"] == "【对账异常】沙箱支付 2023-05-17 对账差错 2 笔待处理"
        assert mail["text"].startswith("！！对账结果异常，请尽快核实处理！！")

    body = {"resolution": "refunded_to_payer", "note": "长款已原路退还付款人"}
    url = f"{BASE}/runs/{first}/items/{surplus['item_id']}/resolution"
    assert (await http.post(url, json=body, headers=admin)).status_code == 403  # finance supervisors only
    assert (await http.post(url, json=body, headers=clerk)).status_code == 403
    resolved = await http.post(url, json=body, headers=finance)
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["open_items"], resolved.json()["resolved_by"]) == (1, finance_user)
    again = await http.post(url, json=body, headers=finance)
    assert (again.status_code, again.json()["code"]) == (409, "ITEM_NOT_OPEN")

    # The platform side was corrected meanwhile; a re-run replaces the run that still waits for finance.
    again_body = {"channel": "sandbox", "bill_date": str(DAY)}
    assert (await http.post(f"{BASE}/runs", json=again_body, headers=clerk)).status_code == 403
    rerun = await http.post(f"{BASE}/runs", json=again_body, headers=finance)
    assert (rerun.status_code, rerun.json()["started"]) == (202, False)
    second = (await progress(http, finance, "awaiting_resolution", 2))["run_id"]
    assert (await http.get(f"{BASE}/runs/{first}", headers=finance)).json()["status"] == "superseded"
    stale = await http.post(f"{BASE}/runs/{first}/items/{shortfall['item_id']}/resolution", json=body, headers=finance)
    assert (stale.status_code, stale.json()["code"]) == (409, "RUN_NOT_OPEN")

    for item in await items(http, finance, second, state="open"):
        # The shortfall is a bad debt written off; the rest crossed the day.
        decision = "written_off" if item["outcome"] == "platform_only" else "cross_day"
        answer = await http.post(
            f"{BASE}/runs/{second}/items/{item['item_id']}/resolution",
            json={"resolution": decision, "note": "核对无误"},
            headers=finance,
        )
        assert answer.status_code == 200, answer.text
    await progress(http, finance, "done", 2)
    done = (await http.get(f"{BASE}/runs/{second}", headers=finance)).json()
    assert (done["status"], done["open_items"]) == ("resolved", 0)
    # The re-run's differences were mailed as an alert of their own.
    assert [m["subject"][:6] for m in await _mails(mailer, finance_mail, 2)] == ["【对账异常】"] * 2

    async with sessions() as session:
        actions = (
            await session.execute(
                select(col(AuditEvent.action)).where(col(AuditEvent.actor_user_id).in_((finance_user, admin_user)))
            )
        ).scalars()
        assert (
            sorted(actions)
            == ["account.email_changed"] * 2
            + ["permission.finance_level"]
            + ["reconciliation.rerun"] * 2
            + ["reconciliation.resolve"] * 3
        )


async def _finance_notices(sessions: async_sessionmaker[AsyncSession], user_id: str) -> list[str]:
    for _ in range(100):
        async with sessions() as session:
            titles = list(
                (
                    await session.execute(select(col(Notification.title)).where(col(Notification.user_id) == user_id))
                ).scalars()
            )
        if titles:
            return titles
        await asyncio.sleep(0.1)
    return []


async def _mails(mailer: SandboxMailer, address: str, count: int) -> list[dict]:
    """The e-mails sent to `address` once there are `count` of them (notices go out beside the flow)."""
    for _ in range(100):
        sent = [mail["request"] for mail in await mailer.outbox(address)]
        if len(sent) >= count:
            return sent
        await asyncio.sleep(0.1)
    return sent
