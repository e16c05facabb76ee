"""A user's notices: own only, newest first, paged; another user's notice does not exist for them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models.common import Role
from tests.api.helpers import login, make_notification, make_user


async def test_list_is_own_newest_first_and_paged(api, sessions) -> None:
    user_a, _ = await make_user(sessions, Role.PATIENT)
    user_b, _ = await make_user(sessions, Role.PATIENT)
    start = datetime.now(UTC) - timedelta(hours=1)
    mine = [
        await make_notification(sessions, user_a, f"消息{i}", created_at=start + timedelta(minutes=i)) for i in range(3)
    ]
    await make_notification(sessions, user_b, "别人的消息")
    headers = await login(api, user_a)

    page = (await api.get("/api/v1/me/notifications", headers=headers)).json()
    assert [item["id"] for item in page["items"]] == mine[::-1]
    assert (page["total"], page["unread"], page["limit"], page["offset"]) == (3, 3, 20, 0)
    assert page["items"][0]["title"] == "消息2"

    second = (await api.get("/api/v1/me/notifications", params={"limit": 2, "offset": 2}, headers=headers)).json()
    assert [item["id"] for item in second["items"]] == [mine[0]]
    assert (await api.get("/api/v1/me/notifications")).status_code == 401


async def test_mark_read_is_own_only(api, sessions) -> None:
    user_a, _ = await make_user(sessions, Role.PATIENT)
    user_b, _ = await make_user(sessions, Role.DOCTOR)
    notice_a = await make_notification(sessions, user_a)
    notice_b = await make_notification(sessions, user_b)
    headers_a = await login(api, user_a)

    read = await api.post(f"/api/v1/me/notifications/{notice_a}/read", headers=headers_a)
    assert read.status_code == 200
    first_read_at = read.json()["read_at"]
    assert first_read_at is not None
    again = await api.post(f"/api/v1/me/notifications/{notice_a}/read", headers=headers_a)
    assert again.json()["read_at"] == first_read_at
    assert (await api.get("/api/v1/me/notifications", headers=headers_a)).json()["unread"] == 0

    foreign = await api.post(f"/api/v1/me/notifications/{notice_b}/read", headers=headers_a)
    assert foreign.status_code == 404
    assert foreign.json()["code"] == "NOT_FOUND"
    headers_b = await login(api, user_b)
    untouched = (await api.get("/api/v1/me/notifications", headers=headers_b)).json()
    assert untouched["items"][0]["read_at"] is None

    for bad_id in ("0", "99999999999", "abc"):
        response = await api.post(f"/api/v1/me/notifications/{bad_id}/read", headers=headers_a)
        assert response.status_code == 422
