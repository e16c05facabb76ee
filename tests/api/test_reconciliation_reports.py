"""Finance's side of reconciliation over the API, against a day the real activities matched: levels of finance staff
(clerks see and export, supervisors resolve and write off), a difference traced to its statement lines, and the day's
result as CSV, XLSX, and a printable overview (HTML and PDF) with charts and the mismatch list."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import httpx
import openpyxl
import pytest
from pypdf import PdfReader
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.insurance.sandbox import SandboxInsurance
from activities.insurance_book import NoInsuranceSettlements
from activities.reconciliation import ReconciliationActivities
from api.errors import Problem
from api.services.reconciliation import check_day
from core.settings import CampusSettings, Settings
from models.common import Role
from models.reconciliation import OpenRun, StatementRequest
from tests.activities.test_reconciliation_match import DAY, Books, ListedChannel, at, pay, refund
from tests.api.helpers import login, make_user
from tests.api.security_helpers import events_about

BASE = "/api/v1/reconciliation"


async def matched_day(sessions: async_sessionmaker[AsyncSession], settings: Settings, uid: str) -> dict[str, str]:
    """A day of a channel of its own, matched by the real activities: one payment agrees, one is only at the
    channel (长款), one only at the platform (短款), and one refund was paid twice at the channel."""
    _, patient_id = await make_user(sessions, Role.PATIENT)
    assert patient_id is not None
    books = Books(sessions, patient_id, f"r{uid}", uid)
    channel = ListedChannel(books.channel)
    agreed = await books.bill("agreed", 5000, at(DAY, 9))
    lost = await books.bill("lost", 4000, at(DAY, 10))
    refunded = await books.bill("refunded", 8000, at(DAY, 8))
    refund_id = await books.refund("refunded-r", refunded, 2000, at(DAY, 15), "succeeded")
    extra = books.id("extra")
    channel.lines = [
        pay(agreed, 5000, at(DAY, 9)),
        pay(extra, 1200, at(DAY, 11)),
        pay(refunded, 8000, at(DAY, 8)),
        refund(refunded, refund_id, 2000, at(DAY, 15)),
        refund(refunded, refund_id, 2000, at(DAY, 15, 1)),
    ]
    acts = ReconciliationActivities(
        sessions, {channel.name: channel}, SandboxInsurance(sessions, settings), NoInsuranceSettlements(), []
    )
    run_id = await acts.open_run(
        OpenRun(channel=channel.name, bill_date=DAY, workflow_id=f"w-{uid}", workflow_run_id=f"r-{uid}", round=1)
    )
    await acts.download_statement(StatementRequest(run_id=run_id, channel=channel.name, bill_date=DAY))
    await acts.match_statement(run_id)
    return {"run_id": run_id, "agreed": agreed, "lost": lost, "extra": extra, "refunded": refunded, "refund": refund_id}


async def items(api: httpx.AsyncClient, headers: dict[str, str], run_id: str) -> dict[str, dict]:
    response = await api.get(f"{BASE}/runs/{run_id}/items", headers=headers)
    assert response.status_code == 200, response.text
    return {item["outcome"]: item for item in response.json()["items"]}


async def test_clerks_see_and_export_and_supervisors_resolve_and_write_off(api, sessions, settings, uid) -> None:
    day = await matched_day(sessions, settings, uid)
    run_id = day["run_id"]
    admin_user, _ = await make_user(sessions, Role.ADMIN)
    clerk_user, _ = await make_user(sessions, Role.FINANCE)
    supervisor_user, _ = await make_user(sessions, Role.FINANCE)
    doctor_user, _ = await make_user(sessions, Role.DOCTOR)
    admin, clerk, supervisor, doctor = [
        await login(api, user) for user in (admin_user, clerk_user, supervisor_user, doctor_user)
    ]

    # A new finance user is a clerk: the run and its differences, but no resolving.
    run = (await api.get(f"{BASE}/runs/{run_id}", headers=clerk)).json()
    assert (run["matched"], run["matched_payment_fen"], run["matched_refund_fen"]) == (2, 13_000, 0)
    assert (run["channel_only"], run["platform_only"], run["amount_mismatch"], run["open_items"]) == (1, 1, 1, 3)
    assert run["statement_id"] == run_id
    found = await items(api, clerk, run_id)
    assert set(found) == {"channel_only", "platform_only", "amount_mismatch"}  # differences only
    body = {"resolution": "cross_day", "note": "次日入账"}
    lost_url = f"{BASE}/runs/{run_id}/items/{found['platform_only']['item_id']}/resolution"
    refused = await api.post(lost_url, json=body, headers=clerk)
    assert (refused.status_code, refused.json()["permission"]) == (403, "reconciliation.manage")
    assert (await api.get(f"{BASE}/runs/{run_id}", headers=doctor)).status_code == 403

    # The admin makes one of them a supervisor; a finance level is only for finance staff.
    level = {"level": "supervisor", "reason": "任命财务主管"}
    made = await api.put(f"/api/v1/admin/users/{supervisor_user}/finance-level", json=level, headers=admin)
    assert made.status_code == 200, made.text
    held = {p["code"]: (p["held"], p["source"]) for p in made.json()["permissions"]}
    assert held["reconciliation.read"] == (True, "role")
    assert held["reconciliation.manage"] == held["reconciliation.write_off"] == (True, "grant")
    not_finance = await api.put(f"/api/v1/admin/users/{doctor_user}/finance-level", json=level, headers=admin)
    assert (not_finance.status_code, not_finance.json()["code"]) == (409, "NOT_FINANCE")
    assert (
        await api.put(f"/api/v1/admin/users/{clerk_user}/finance-level", json=level, headers=clerk)
    ).status_code == 403
    events = await events_about(sessions, supervisor_user, "permission.finance_level")
    assert [(e.actor_user_id, e.detail) for e in events] == [(admin_user, {"level": "supervisor"})]

    # Writing a difference off needs write_off: one who may only resolve is refused it.
    grant = {"effect": "grant", "reason": "代为处理差错"}
    await api.put(f"/api/v1/admin/users/{clerk_user}/permissions/reconciliation.manage", json=grant, headers=admin)
    write_off = {"resolution": "written_off", "note": "经审批核销"}
    no_write_off = await api.post(lost_url, json=write_off, headers=clerk)
    assert (no_write_off.status_code, no_write_off.json()["permission"]) == (403, "reconciliation.write_off")
    # The supervisor passes every check; this day was matched without its flow, so the flow is not found.
    passed = await api.post(lost_url, json=write_off, headers=supervisor)
    assert (passed.status_code, passed.json()["code"]) == (404, "NOT_FOUND")

    # Back to clerk: the personal exceptions go, the role's default holds again.
    clerk_level = {"level": "clerk", "reason": "调岗"}
    back = await api.put(f"/api/v1/admin/users/{supervisor_user}/finance-level", json=clerk_level, headers=admin)
    held = {p["code"]: (p["held"], p["source"]) for p in back.json()["permissions"]}
    assert held["reconciliation.manage"] == held["reconciliation.write_off"] == (False, "none")


async def test_a_difference_is_traced_to_its_statement_lines(api, sessions, settings, uid) -> None:
    day = await matched_day(sessions, settings, uid)
    clerk_user, _ = await make_user(sessions, Role.FINANCE)
    clerk = await login(api, clerk_user)
    found = await items(api, clerk, day["run_id"])

    twice = found["amount_mismatch"]
    assert (twice["out_refund_no"], twice["line_no"], twice["line_count"]) == (day["refund"], 4, 2)
    assert (twice["platform_record_id"], twice["shortfall_fen"]) == (day["refund"], 2000)  # refunded twice
    source = await api.get(f"{BASE}/runs/{day['run_id']}/items/{twice['item_id']}/source", headers=clerk)
    assert source.status_code == 200, source.text
    lines = source.json()["lines"]
    assert [(line["line_no"], line["amount_fen"], line["repeated"]) for line in lines] == [
        (4, 2000, True),
        (5, 2000, True),
    ]

    surplus = found["channel_only"]
    (line,) = (await api.get(f"{BASE}/runs/{day['run_id']}/items/{surplus['item_id']}/source", headers=clerk)).json()[
        "lines"
    ]
    assert (line["line_no"], line["out_trade_no"], line["status"]) == (2, day["extra"], "SUCCESS")
    shortfall = found["platform_only"]
    lost = await api.get(f"{BASE}/runs/{day['run_id']}/items/{shortfall['item_id']}/source", headers=clerk)
    assert (lost.json()["lines"], lost.json()["item"]["platform_record_id"]) == ([], day["lost"])
    other = await api.get(f"{BASE}/runs/nope/items/{shortfall['item_id']}/source", headers=clerk)
    assert other.status_code == 404


async def test_the_days_result_exports_as_csv_and_xlsx(api, sessions, settings, uid) -> None:
    day = await matched_day(sessions, settings, uid)
    clerk_user, _ = await make_user(sessions, Role.FINANCE)
    clerk = await login(api, clerk_user)
    run_id = day["run_id"]

    exported = await api.get(f"{BASE}/runs/{run_id}/export.csv", headers=clerk)
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("text/csv")
    assert f"reconciliation-{run_id}.csv" in exported.headers["content-disposition"]
    assert exported.text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert {(r["核对结果"], r["商户订单号"], r["对账单行号"], r["短款金额（元）"]) for r in rows} == {
        ("长款", day["extra"], "2", "0.00"),
        ("短款", day["lost"], "", "40.00"),
        ("金额不符", day["refunded"], "4", "20.00"),
    }
    assert {r["批次"] for r in rows} == {run_id} and {r["院区"] for r in rows} == {"全院"}
    assert {r["处理状态"] for r in rows} == {"待处理"}

    book_response = await api.get(f"{BASE}/runs/{run_id}/export.xlsx", headers=clerk)
    assert book_response.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(book_response.content))
    assert book.sheetnames == ["汇总", "差错明细"]
    summary = {row[0]: row[1] for row in book["汇总"].iter_rows(min_row=2, values_only=True)}
    assert summary["相符"] == "2 笔；收款 130.00 元，退款 0.00 元"
    assert summary["未处理短款"] == "60.00 元"
    sheet = book["差错明细"]
    header = [cell.value for cell in sheet[1]]
    listed = [dict(zip(header, row, strict=True)) for row in sheet.iter_rows(min_row=2, values_only=True)]
    lost = next(r for r in listed if r["核对结果"] == "短款")
    assert Decimal(str(lost["平台金额（元）"])) == Decimal("40.00") and lost["对账单行号"] is None
    assert sheet.cell(row=2, column=header.index("渠道金额（元）") + 1).number_format == "0.00"

    events = await events_about(sessions, run_id, "reconciliation.exported")
    assert [e.detail["format"] for e in events] == ["csv", "xlsx"]
    assert (await api.get(f"{BASE}/runs/nope/export.csv", headers=clerk)).status_code == 404


async def test_the_printable_overview_has_the_figures_charts_and_mismatch_list(api, sessions, settings, uid) -> None:
    day = await matched_day(sessions, settings, uid)
    clerk_user, _ = await make_user(sessions, Role.FINANCE)
    clerk = await login(api, clerk_user)
    run_id = day["run_id"]

    page = await api.get(f"{BASE}/runs/{run_id}/overview.html", headers=clerk)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert f"r{uid} 2025-03-10 对账结果" in html
    assert "有 3 笔差错待处理，未处理短款 60.00 元" in html
    assert html.count("<svg") == 2 and "差错笔数" in html and "金额（元）" in html
    assert all(day[key] in html for key in ("extra", "lost", "refund"))
    assert "@media print" in html

    pdf = await api.get(f"{BASE}/runs/{run_id}/overview.pdf", headers=clerk)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "对账结果" in text and "差错明细（3 笔）" in text
    assert day["lost"] in text and day["extra"] in text
    # The same day gives the same document.
    assert (await api.get(f"{BASE}/runs/{run_id}/overview.pdf", headers=clerk)).content == pdf.content


@pytest.mark.parametrize("path", ["export.csv", "export.xlsx", "overview.html", "overview.pdf"])
async def test_results_are_for_those_who_may_read_them(api, sessions, path: str) -> None:
    pharmacist_user, _ = await make_user(sessions, Role.PHARMACIST)
    refused = await api.get(f"{BASE}/runs/any/{path}", headers=await login(api, pharmacist_user))
    assert (refused.status_code, refused.json()["permission"]) == (403, "reconciliation.read")


def test_a_day_names_a_campus_exactly_where_campuses_are_reconciled_apart() -> None:
    past = date(2025, 3, 10)
    apart = Settings(campuses={"east": CampusSettings(name="东院区"), "west": CampusSettings(name="西院区")})  # type: ignore[call-arg]
    check_day(apart, "sandbox", past, "east")
    check_day(apart, "insurance", past, None)  # 医保 is one institution: reconciled for the hospital

    def refusal(settings: Settings, channel: str, campus: str | None) -> str:
        with pytest.raises(Problem) as refused:
            check_day(settings, channel, past, campus)
        return f"{refused.value.status} {refused.value.code}: {refused.value.detail}"

    assert refusal(apart, "sandbox", None) == "422 UNKNOWN_CAMPUS: 沙箱支付按院区对账，请指定院区：east、west"
    assert refusal(apart, "sandbox", "north").startswith("422 UNKNOWN_CAMPUS")
    assert refusal(apart, "insurance", "east") == "422 UNKNOWN_CAMPUS: 医保全院统一对账，无需指定院区"
    assert refusal(Settings(), "sandbox", "east").startswith("422 UNKNOWN_CAMPUS")  # type: ignore[call-arg]
    assert refusal(Settings(), "paypal", None).startswith("422 UNKNOWN_CHANNEL")  # type: ignore[call-arg]
