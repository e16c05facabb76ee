"""医保移动支付 over the HTTP API against the whole stack, with the 医保 platform played by the protocol simulator
(tests/simulators/nhsa.py) over real HTTP: the patient books with 医保 on their phone, authorizes on the platform
(its report comes in as a callback), the registration fee is split to the fen (pooled fund, personal account, self-pay
at the channel) with a lost 6202 answer found settled at the platform's notice; then an administrator refunds part of
the fee beyond the self-pay part, which gives the whole settlement back (6203, timing out once and retried under the
same key) and settles the remaining amount anew, the channel returning the self-pay difference."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest_asyncio
from sqlalchemy import select
from sqlmodel import col

from activities.adapters.registry import load_adapters
from core.settings import Settings
from models.tables import SandboxPayOrder, SandboxRefund
from tests.e2e.conftest import E2E_QUEUE, running_api
from tests.simulators.nhsa import NhsaSimulator
from tests.simulators.serving import serve
from workers.journey import Journey
from workers.seed import DEMO_HIS_DIAGNOSES, DEMO_IDENTITIES
from workers.worker import build_activities, build_workers

CODE = "H11010500001"
PAASID = "qihuang-e2e"
SECRET = "e2e-simulator-secret"
PATIENT = "demo-patient2"


@pytest_asyncio.fixture
async def platform() -> AsyncIterator[tuple[NhsaSimulator, str]]:
    simulator = NhsaSimulator(fixmedins_code=CODE, paasid=PAASID, secret=SECRET, stall_s=3.0)
    async with serve(simulator.app) as url:
        yield simulator, url
        simulator.release()


def nhsa_settings(database_url: str, url: str) -> Settings:
    """The stack's settings with the nhsa adapter pointed at the simulator, on a queue of its own (the session's
    workers speak to the sandbox 医保 platform)."""
    config: dict[str, Any] = {
        "base_url": url,
        "fixmedins_code": CODE,
        "fixmedins_name": "岐黄中医互联网医院",
        "mdtrtarea_admvs": "110105",
        "insuplc_admdvs": "110105",
        "paasid": PAASID,
        "secret": SECRET,
        "opter": "0001",
        "opter_name": "互联网医院",
        # A platform silent for a second is a timeout: the simulator's stalls are three.
        "timeout_s": 1.0,
    }
    return Settings(  # type: ignore[call-arg]
        database_url=database_url,
        task_queue=f"{E2E_QUEUE}-nhsa",
        adapter_insurance="nhsa",
        insurance_nhsa=config,
    )


async def test_a_mobile_insurance_payment_is_split_and_partly_refunded_beyond_self_pay(
    make_stack, platform, database_url, sessions, client
) -> None:  # type: ignore[no-untyped-def]
    simulator, url = platform
    identity = DEMO_IDENTITIES[PATIENT]
    _, disease, doctor_id = DEMO_HIS_DIAGNOSES[PATIENT]
    doctor = f"demo-doctor{doctor_id.removeprefix('doc-')}"
    person = simulator.add_person(name=identity["name"], certno=identity["id_card_no"], balance_fen=0)
    # The patient's standing (consents, real name, revisit check) is kept by the session's stack, whose flows live on.
    home = await make_stack()
    await Journey(home.http, patient=PATIENT, doctor=doctor).register_patient(identity, disease)

    settings = nhsa_settings(database_url, url)
    async with AsyncExitStack() as stack:
        for worker in build_workers(
            client, settings.task_queue, build_activities(sessions, settings, load_adapters(sessions, settings))
        ):
            await stack.enter_async_context(worker)
        http = await stack.enter_async_context(running_api(settings, client))
        journey = Journey(http, patient=PATIENT, doctor=doctor)

        # Booked with 医保移动支付: the answer leads to the authorization, nothing is settled or ordered yet.
        visit = await journey.book(await journey.free_slot(doctor_id, disease), {"mobile": True, "use_account": False})
        bill_id = visit["bill_id"]
        assert visit["pay_url"] == f"/bills/{bill_id}/insurance-authorization"
        waiting = await journey.call("GET", f"/bills/{bill_id}", journey.patient)
        assert waiting["insurance"]["status"] == "awaiting_authorization" and waiting["insurance"]["mobile"]

        # Someone else's authorization is refused; the patient's own is the platform's report, as a callback.
        stranger = simulator.add_person(name="王五", certno="110101199003070011")
        refused = await http.post(
            "/api/v1/callbacks/insurance/nhsa/authorizations",
            content=simulator.authorize(stranger, bill_id)[1],
            headers=simulator.authorize(stranger, bill_id)[0],
        )
        assert refused.status_code == 409 and refused.json()["code"] == "INSURANCE_AUTH_NOT_PATIENT"
        # The upload (6201) times out once and is retried under its key; 6202's answer is lost altogether.
        simulator.fail_next("6201", "stall")
        simulator.fail_next("6202", "stall")
        headers, body = simulator.authorize(person, bill_id)
        answer = await http.post("/api/v1/callbacks/insurance/nhsa/authorizations", content=body, headers=headers)
        assert answer.status_code == 200, answer.text

        async def orders() -> list[Any]:
            return _orders_of(simulator, person.psn_no)

        [order] = await journey.until(
            "医保订单在平台结算",
            orders,
            lambda orders: len(orders) == 1 and orders[0].ord_stas == "4",
        )
        # The platform's settlement notice wakes the bill to ask 6301 what its unanswered 6202 did.
        headers, body = simulator.notice(order.pay_ord_id)
        answer = await http.post("/api/v1/callbacks/insurance/nhsa/notices", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        bill = await journey.until(
            "医保结算完成，自付部分待支付",
            lambda: journey.call("GET", f"/bills/{bill_id}", journey.patient),
            lambda b: (b["insurance"] or {}).get("status") == "settled" and "/sandbox/" in (b["pay_url"] or ""),
        )
        part = bill["insurance"]
        assert order.shares is not None and part["setl_id"] == order.pay_ord_id and part["mobile"]
        assert (part["fund_fen"], part["account_fen"], part["cash_fen"]) == (
            order.shares.fund_fen,
            order.shares.account_fen,
            order.shares.cash_fen,
        )
        assert part["fund_fen"] + part["account_fen"] + part["cash_fen"] == bill["total_fen"] == order.total_fen
        assert bill["amount_fen"] == part["cash_fen"] > 0 and bill["insurance_fen"] == part["fund_fen"] > 0
        assert _sent(simulator, "6202", order.pay_ord_id) == 1  # asked about, never resent
        await journey.pay(bill_id, "挂号费个人自付部分")
        async with sessions() as session:
            charged = await session.get(SandboxPayOrder, bill_id)
        assert charged is not None and charged.amount_fen == part["cash_fen"] and charged.charges == 1

        # The visit ends; an administrator refunds more than the self-pay part and less than everything.
        await journey.visit_stage(visit["visit_id"], "waiting_doctor", journey.patient)
        await journey.consult(visit["visit_id"])
        total, cash = bill["total_fen"], part["cash_fen"]
        wanted = cash + (total - cash) // 2
        simulator.fail_next("6203", "stall")
        started = await journey.call(
            "POST", f"/bills/{bill_id}/refunds", journey.admin, expected=202,
            json={"reason_code": "patient_unable_to_attend", "reason": "部分服务未提供", "amount_fen": wanted},
        )  # fmt: skip
        [done] = await journey.until(
            "部分退款完成",
            lambda: journey.call("GET", f"/bills/{bill_id}/refunds", journey.admin),
            lambda refunds: [r["status"] for r in refunds] in (["succeeded"], ["failed"]),
        )
        assert done["refund_id"] == started["refund_id"] and done["status"] == "succeeded", done
        assert done["final"] is False

        # The whole mobile settlement went back once (its 6203 timed out and was retried under the same key) and
        # what remains was settled anew as a mobile order of its own.
        assert simulator.orders[order.pay_ord_id].ord_stas == "7"
        assert _sent(simulator, "6203", order.pay_ord_id) == 1
        [again] = [o for o in _orders_of(simulator, person.psn_no) if o.pay_ord_id != order.pay_ord_id]
        assert again.ord_stas == "4" and again.shares is not None and again.total_fen == total - wanted
        # The patient gets back exactly what was asked: the 医保 difference and the self-pay difference.
        insurance_back = order.shares.fund_fen + order.shares.account_fen - again.shares.fund_fen
        channel_back = cash - again.shares.cash_fen
        assert (done["insurance_fen"], done["channel_fen"]) == (insurance_back, channel_back)
        assert insurance_back + channel_back == wanted and 0 <= channel_back <= cash
        after = await journey.call("GET", f"/bills/{bill_id}", journey.patient)
        assert (after["refunded_fen"], after["insurance_refunded_fen"]) == (channel_back, insurance_back)
        assert after["insurance"]["setl_id"] == again.pay_ord_id and after["insurance"]["status"] == "settled"
        assert after["insurance"]["cash_fen"] == again.shares.cash_fen
        async with sessions() as session:
            channel_refunds = (
                (await session.execute(select(SandboxRefund).where(col(SandboxRefund.out_trade_no) == bill_id)))
                .scalars()
                .all()
            )
        assert [r.amount_fen for r in channel_refunds] == ([channel_back] if channel_back else [])
        assert simulator.persons[person.psn_no].balance_fen == 0  # the account was never used

        inbox = (await journey.call("GET", "/me/notifications", journey.patient, params={"limit": 50}))["items"]
        assert any(n["template"] == "refund_started" and "重新结算" in n["body"] for n in inbox)


def _orders_of(simulator: NhsaSimulator, psn_no: str) -> list[Any]:
    return [o for o in simulator.orders.values() if o.psn_no == psn_no]


def _sent(simulator: NhsaSimulator, infno: str, pay_ord_id: str) -> int:
    """How many messages of `infno` about the order the platform processed (a replayed msgid is not processed)."""
    return sum(
        1
        for envelope in simulator.received
        if envelope["infno"] == infno and envelope["input"]["data"].get("payOrdId") == pay_ord_id
    )
