"""A catalogue change end to end (8.6.2): the demo pharmacist proposes a new 饮片 and later its disabling; only the
senior pharmacist (holding `catalog.approve`) may publish; the proposer hears the result; the record keeps both
changes with what the entry was before."""

from __future__ import annotations

import uuid

from workers.journey import Journey


async def test_a_proposal_is_published_only_by_a_senior_pharmacist(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = await make_stack()
    journey = Journey(stack.http)
    name = f"演示饮片{uuid.uuid4().hex[:6]}"
    proposer, senior = "demo-pharmacist", "demo-pharmacist2"

    async def decide(change: dict, user: str, expected: int = 200) -> dict:
        return await journey.call(
            "POST", f"/catalog/changes/{change['id']}/decision", user, expected=expected, json={"approve": True}
        )

    added = await journey.call(
        "POST", "/catalog/changes", proposer, expected=201,
        json={"kind": "add", "herb_name": name, "fields": {"price_fen_per_100g": 380, "spec": "饮片"}, "reason": "科室申请"},
    )  # fmt: skip
    refused = await decide(added, proposer, expected=403)  # the proposer holds only catalog.maintain
    assert refused["code"] == "FORBIDDEN"
    published = await decide(added, senior)
    assert (published["status"], published["before"]) == ("published", None)
    [herb] = (await journey.call("GET", "/catalog/herbs", journey.doctor, params={"q": name}))["items"]
    assert (herb["price_fen_per_100g"], herb["active"]) == (380, True)
    await journey.until(
        "审核结果通知",
        lambda: journey.call("GET", "/me/notifications", proposer),
        lambda page: any(added["id"] in item["body"] for item in page["items"]),
    )

    disabling = await journey.call(
        "POST", "/catalog/changes", proposer, expected=201,
        json={"kind": "disable", "herb_name": name, "reason": "供应商停产"},
    )  # fmt: skip
    assert (await decide(disabling, senior))["before"]["active"] is True
    assert (await journey.call("GET", "/catalog/herbs", journey.doctor, params={"q": name}))["total"] == 0
    shown = await journey.call("GET", "/catalog/herbs", journey.doctor, params={"q": name, "include_disabled": True})
    assert shown["items"][0]["active"] is False
    again = await decide(disabling, senior, expected=409)
    assert again["code"] == "CHANGE_DECIDED"
    record = await journey.call("GET", "/catalog/changes", senior, params={"herb_name": name, "order": "oldest"})
    assert [(c["kind"], c["status"]) for c in record["items"]] == [("add", "published"), ("disable", "published")]
