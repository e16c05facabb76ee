"""Fulfilment steps against PostgreSQL and the sandbox pharmacies: routing by stock and choice with the partners
admins configured, the order at the routed pharmacy, and the signed re-check on the evidence ledger."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlmodel import col
from temporalio.exceptions import ApplicationError

from activities.adapters.courier.sandbox import SandboxCourier
from activities.adapters.pharmacy.sandbox import SandboxPharmacy
from activities.adapters.signer.sandbox import SandboxSigner
from activities.adapters.tsa.sandbox import SandboxTsa
from activities.fulfilment import RECHECK_EVIDENCE, FulfilmentActivities
from activities.pharmacy_routing import PharmacyNetwork
from activities.signatures import Signatures
from api.services.prescription_signatures import check_signatures
from core.crypto.sm import FieldCipher
from core.ledger.service import EvidenceLedger
from models.fulfilment import (
    OWN_PHARMACY,
    DispenseCheck,
    FulfilmentInput,
    FulfilmentStage,
    FulfilmentState,
    Recheck,
)
from models.prescription import PickupMethod, PrescriptionDraft, RxItem
from models.tables import Fulfilment, LedgerEntry, PartnerPharmacy, Prescription
from tests.api.consult_helpers import make_consult_visit, make_prescription


@pytest.fixture(scope="module")
def tsa(settings) -> SandboxTsa:  # type: ignore[no-untyped-def]
    return SandboxTsa(None, settings)  # type: ignore[arg-type]


@pytest.fixture
def steps(sessions, settings, tsa) -> FulfilmentActivities:  # type: ignore[no-untyped-def]
    cipher = FieldCipher(settings.pii_key, settings.blind_index_key)
    signatures = Signatures(SandboxSigner(sessions, settings), tsa, EvidenceLedger(sessions))
    network = PharmacyNetwork(sessions, settings, SandboxPharmacy(sessions, settings))
    return FulfilmentActivities(sessions, cipher, network, SandboxCourier(sessions, settings), signatures)


class World:
    """Two partners of a made-up district with their own shelves, and herbs nobody else stocks."""

    def __init__(self, sessions, settings) -> None:  # type: ignore[no-untyped-def]
        tag = uuid.uuid4().hex[:8]
        self.sessions, self.settings = sessions, settings
        self.region = f"测试市{tag}区"
        self.herbs = [f"党参-{tag}", f"茯苓-{tag}"]
        self.near, self.cooks = f"near-{tag}", f"cooks-{tag}"

    def shelf(self, pharmacy_id: str | None) -> SandboxPharmacy:
        return SandboxPharmacy(self.sessions, self.settings, pharmacy_id=pharmacy_id)

    async def set_up(self) -> None:
        async with self.sessions() as session, session.begin():
            session.add(
                PartnerPharmacy(id=self.near, name="近邻药店", adapter="sandbox", regions=[self.region],
                                delivers=True, pickup=True, decoction=False, priority=1)
            )  # fmt: skip
            session.add(
                PartnerPharmacy(id=self.cooks, name="代煎药店", adapter="sandbox", regions=[self.region],
                                delivers=True, pickup=False, decoction=True, priority=2)
            )  # fmt: skip
        for herb in self.herbs:
            await self.shelf(None).set_stock(herb, 0)  # the hospital has none
            await self.shelf(self.near).set_stock(herb, 500)
            await self.shelf(self.cooks).set_stock(herb, 500)

    async def prescription(self, pickup: PickupMethod, choice: str | None = None, decoction: bool = False) -> str:
        visit = await make_consult_visit(self.sessions)
        draft = PrescriptionDraft(diagnosis="胃痞病", items=[RxItem(herb=h, dose_g=15) for h in self.herbs], doses=7)
        cipher = FieldCipher(self.settings.pii_key, self.settings.blind_index_key)
        return await make_prescription(
            self.sessions,
            visit,
            "fulfilling",
            draft,
            revision=1,
            pickup=pickup.value,
            address_enc=cipher.encrypt("address", f"{self.region}某路1号"),
            pharmacy_choice=choice,
            decoction_service=decoction,
        )


@pytest.fixture
async def world(sessions, settings) -> World:  # type: ignore[no-untyped-def]
    made = World(sessions, settings)
    await made.set_up()
    return made


async def test_delivery_short_at_the_hospital_goes_to_the_nearby_partner_whose_shelf_gives_the_herbs(
    steps: FulfilmentActivities, world: World
) -> None:
    rx_id = await world.prescription(PickupMethod.DELIVERY)
    route = await steps.route_prescription(rx_id)
    assert (route.pharmacy_id, route.own) == (world.near, False)
    assert route.reason == f"配送到家，配送地址在其配送范围（{world.region}）内，饮片库存充足"
    assert route.passed_over[0] == f"本院药房：库存不足（{world.herbs[0]}缺105克、{world.herbs[1]}缺105克）"

    order = await steps.submit_to_pharmacy(rx_id, route.pharmacy_id)
    again = await steps.submit_to_pharmacy(rx_id, route.pharmacy_id)  # a retried step: the same order
    assert again.order_no == order.order_no and order.pharmacy == f"partner:{world.near}"
    assert await world.shelf(world.near).stock_of(world.herbs[0]) == 395
    assert await world.shelf(world.cooks).stock_of(world.herbs[0]) == 500
    await steps.cancel_pharmacy_order(rx_id, order.order_no, route.pharmacy_id)
    assert await world.shelf(world.near).stock_of(world.herbs[0]) == 500


async def test_decoction_and_the_patients_choice_decide_and_a_short_chosen_counter_refuses(
    steps: FulfilmentActivities, world: World
) -> None:
    cooked = await steps.route_prescription(await world.prescription(PickupMethod.DELIVERY, decoction=True))
    assert cooked.pharmacy_id == world.cooks and "近邻药店：不提供代煎" in cooked.passed_over

    counter = await steps.route_prescription(await world.prescription(PickupMethod.PHARMACY, world.near))
    assert counter.pharmacy_id == world.near and counter.reason == "患者选择到近邻药店取药，饮片库存充足"

    await world.shelf(world.near).set_stock(world.herbs[1], 10)
    with pytest.raises(ApplicationError) as refused:
        await steps.route_prescription(await world.prescription(PickupMethod.PHARMACY, world.near))
    assert refused.value.type == "NO_PHARMACY" and refused.value.non_retryable
    assert refused.value.message == f"没有能够调剂该处方的药房：近邻药店：库存不足（{world.herbs[1]}缺95克）"


async def test_the_signed_recheck_is_on_the_ledger_recorded_and_verifies_until_the_prescription_changes(
    steps: FulfilmentActivities,
    world: World,
    sessions,
    tsa,  # type: ignore[no-untyped-def]
) -> None:
    rx_id = await world.prescription(PickupMethod.PHARMACY, world.near)
    check = DispenseCheck(pharmacist_id="ph-near", approve=True, note="用法用量适宜", pharmacy_id=world.near)
    signature = await steps.sign_recheck(rx_id, check)
    signature.verify(tsa.trust_anchors)
    assert (signature.signer_id, signature.reason) == ("ph-near", "用法用量适宜")
    async with sessions() as session:
        kinds = (
            await session.execute(
                select(col(LedgerEntry.kind)).where(col(LedgerEntry.subject) == f"prescription:{rx_id}")
            )
        ).scalars()
        assert list(kinds) == [RECHECK_EVIDENCE]

    async with sessions() as session:
        patient_id = (await session.get(Prescription, rx_id)).patient_id  # type: ignore[union-attr]
    recheck = Recheck(pharmacist_id="ph-near", pharmacy_id=world.near, approve=True, note="用法用量适宜",
                      signature=signature)  # fmt: skip
    route = await steps.route_prescription(rx_id)
    state = FulfilmentState(
        prescription_id=rx_id, stage=FulfilmentStage.DISPENSED, pickup=PickupMethod.PHARMACY, pharmacy=route,
        recheck=recheck,
    )  # fmt: skip
    fulfilment = FulfilmentInput(prescription_id=rx_id, patient_id=patient_id, pickup=PickupMethod.PHARMACY,
                                 delivery_sla_s=60)  # fmt: skip
    await steps.record_fulfilment(fulfilment, state)
    async with sessions() as session:
        row = await session.get(Fulfilment, rx_id)
        rx = await session.get(Prescription, rx_id)
    assert row is not None and rx is not None
    assert (row.pharmacy_id, row.pharmacy_reason) == (world.near, route.reason)
    assert Recheck.model_validate(row.recheck) == recheck

    [checked] = check_signatures(rx, tsa.trust_anchors, row)
    assert checked.valid and checked.signer_id == "ph-near"
    # The decision is part of what was signed: a stored refusal turned into an approval no longer verifies.
    row.recheck = {**row.recheck, "approve": False}  # type: ignore[dict-item]
    [flipped] = check_signatures(rx, tsa.trust_anchors, row)
    assert not flipped.valid and flipped.problem == "处方内容与签名时不一致"


async def test_flows_from_before_routing_order_from_the_own_pharmacy_under_the_old_key(
    steps: FulfilmentActivities, world: World
) -> None:
    rx_id = await world.prescription(PickupMethod.HOSPITAL)
    await world.shelf(None).set_stock(world.herbs[0], 200)
    await world.shelf(None).set_stock(world.herbs[1], 200)
    order = await steps.submit_to_pharmacy(rx_id)
    assert order.pharmacy == "sandbox" and await world.shelf(None).stock_of(world.herbs[0]) == 95
    # Routed to the own pharmacy, the order keeps the key flows used before routing: a retry finds the same order.
    assert (await steps.submit_to_pharmacy(rx_id, OWN_PHARMACY)).order_no == order.order_no
