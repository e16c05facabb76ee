"""The routing rule on its own: who may take a prescription for each pickup method, in which order, and why the ones
passed over were passed over."""

from __future__ import annotations

import pytest

from activities.pharmacy_routing import Candidate, NoPharmacy, RouteRequest, choose_pharmacy, region_of
from models.fulfilment import OWN_PHARMACY, StockShortage
from models.prescription import PickupMethod

OWN = Candidate(OWN_PHARMACY, "本院药房", "sandbox", (), delivers=True, pickup=True, decoction=True, priority=0)
EAST = Candidate("east", "东城药店", "sandbox", ("北京市东城区",), delivers=True, pickup=True, decoction=False)
CHAOYANG = Candidate("chaoyang", "朝阳药店", "sandbox", ("北京市朝阳区",), delivers=True, pickup=True, decoction=True)
CITY = Candidate("city", "全市药店", "sandbox", ("北京市",), delivers=True, pickup=False, decoction=True, priority=200)
ALL = [OWN, EAST, CHAOYANG, CITY]
ADDRESS = "北京市 东城区东直门内南小街16号"


def request(pickup: PickupMethod, chosen: str | None = None, decoction: bool = False) -> RouteRequest:
    return RouteRequest(pickup=pickup, chosen=chosen, decoction=decoction, address=ADDRESS)


def stock(short: set[str] = frozenset(), down: set[str] = frozenset()):  # type: ignore[assignment,no-untyped-def]
    asked: list[str] = []

    async def shortages(candidate: Candidate) -> list[StockShortage]:
        asked.append(candidate.pharmacy_id)
        if candidate.pharmacy_id in down:
            raise ConnectionError("pharmacy system down")
        return [StockShortage(herb="茯苓", needed_g=105, available_g=40)] if candidate.pharmacy_id in short else []

    shortages.asked = asked  # type: ignore[attr-defined]
    return shortages


def test_region_is_the_longest_matching_prefix_whitespace_aside() -> None:
    assert region_of(ADDRESS, ("北京市", "北京市东城区")) == "北京市东城区"
    assert region_of(ADDRESS, ("北京市朝阳区",)) is None
    assert region_of(ADDRESS, ()) == ""  # delivers anywhere


async def test_hospital_pickup_goes_to_the_own_pharmacy_only() -> None:
    route = await choose_pharmacy(ALL, request(PickupMethod.HOSPITAL), stock())
    assert (route.pharmacy_id, route.own, route.reason) == (OWN_PHARMACY, True, "院内取药，饮片库存充足")
    with pytest.raises(NoPharmacy) as none:
        await choose_pharmacy(ALL, request(PickupMethod.HOSPITAL), stock(short={OWN_PHARMACY}))
    assert none.value.reason == "没有能够调剂该处方的药房：本院药房：库存不足（茯苓缺65克）"
    assert not none.value.retry


async def test_pharmacy_pickup_goes_to_the_chosen_partner_or_nowhere() -> None:
    route = await choose_pharmacy(ALL, request(PickupMethod.PHARMACY, "chaoyang"), stock())
    assert (route.pharmacy_id, route.reason) == ("chaoyang", "患者选择到朝阳药店取药，饮片库存充足")
    with pytest.raises(NoPharmacy):  # short there: the patient is not sent elsewhere
        await choose_pharmacy(ALL, request(PickupMethod.PHARMACY, "chaoyang"), stock(short={"chaoyang"}))
    for gone in ("city", "closed", OWN_PHARMACY):  # no counter, switched off since, not a partner
        with pytest.raises(NoPharmacy) as none:
            await choose_pharmacy(ALL, request(PickupMethod.PHARMACY, gone), stock())
        assert none.value.reason == "所选药店已不再提供取药服务"


async def test_delivery_prefers_the_own_pharmacy_then_partners_covering_the_address() -> None:
    route = await choose_pharmacy(ALL, request(PickupMethod.DELIVERY), stock())
    assert route.pharmacy_id == OWN_PHARMACY and route.passed_over == []

    shortages = stock(short={OWN_PHARMACY})
    route = await choose_pharmacy(ALL, request(PickupMethod.DELIVERY), shortages)
    assert (route.pharmacy_id, route.own) == ("east", False)
    assert route.reason == "配送到家，配送地址在其配送范围（北京市东城区）内，饮片库存充足"
    # 朝阳 does not deliver there: no candidate at all, never asked for stock.
    assert route.passed_over == ["本院药房：库存不足（茯苓缺65克）"]
    assert shortages.asked == [OWN_PHARMACY, "east"]  # type: ignore[attr-defined]


async def test_decoction_and_region_and_stock_each_pass_a_pharmacy_over() -> None:
    route = await choose_pharmacy(ALL, request(PickupMethod.DELIVERY, decoction=True), stock(short={OWN_PHARMACY}))
    assert route.pharmacy_id == "city"
    assert route.passed_over == ["本院药房：库存不足（茯苓缺65克）", "东城药店：不提供代煎"]
    assert route.reason == "配送到家，配送地址在其配送范围（北京市）内，可代煎，饮片库存充足"


async def test_the_patients_partner_out_of_range_is_told_why_and_no_one_in_range_means_no_pharmacy() -> None:
    route = await choose_pharmacy(ALL, request(PickupMethod.DELIVERY, chosen="chaoyang"), stock())
    assert route.pharmacy_id == OWN_PHARMACY and route.passed_over == ["朝阳药店：配送地址不在其配送范围内"]
    far = RouteRequest(pickup=PickupMethod.DELIVERY, chosen=None, decoction=False, address="上海市黄浦区某路1号")
    with pytest.raises(NoPharmacy) as none:
        await choose_pharmacy([EAST, CHAOYANG, CITY], far, stock())
    assert none.value.reason == "没有能够调剂该处方的药房：没有配送到该地址的药房"


async def test_the_patients_partner_goes_first_and_partners_first_when_configured() -> None:
    chosen = await choose_pharmacy(ALL, request(PickupMethod.DELIVERY, chosen="city"), stock())
    assert chosen.pharmacy_id == "city" and "患者选择的药店" in chosen.reason
    partners_first = await choose_pharmacy(ALL, request(PickupMethod.DELIVERY), stock(), prefer_own=False)
    assert partners_first.pharmacy_id == "east"


async def test_a_pharmacy_that_cannot_be_asked_is_passed_over_and_nobody_left_means_retry() -> None:
    route = await choose_pharmacy(ALL, request(PickupMethod.DELIVERY), stock(down={OWN_PHARMACY}))
    assert route.pharmacy_id == "east" and route.passed_over == ["本院药房：药房系统暂时无法查询库存"]
    with pytest.raises(NoPharmacy) as none:
        await choose_pharmacy([OWN], request(PickupMethod.DELIVERY), stock(down={OWN_PHARMACY}))
    assert none.value.retry
