"""Pharmacists sign in for and out of duty (8.3.1.1); each change is audited once."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlmodel import col

from models.common import Role
from models.tables import AuditEvent, PharmacistDuty
from tests.api.helpers import login, make_user


async def _audits(sessions, pharmacist_id: str, action: str) -> int:
    async with sessions() as session:
        return await session.scalar(
            select(func.count()).where(col(AuditEvent.subject_id) == pharmacist_id, col(AuditEvent.action) == action)
        )


async def test_sign_in_and_out_open_and_close_one_period(api, sessions) -> None:
    user, pharmacist_id = await make_user(sessions, Role.PHARMACIST, display_name="王药师")
    assert pharmacist_id is not None
    auth = await login(api, user)

    off = await api.get("/api/v1/pharmacists/me/duty", headers=auth)
    assert off.status_code == 200 and off.json() == {"pharmacist_id": pharmacist_id, "on_duty": False, "since": None}

    signed_in = await api.post("/api/v1/pharmacists/me/duty", json={"on_duty": True}, headers=auth)
    assert signed_in.status_code == 200 and signed_in.json()["on_duty"] and signed_in.json()["since"]
    again = await api.post("/api/v1/pharmacists/me/duty", json={"on_duty": True}, headers=auth)
    assert again.json() == signed_in.json()  # still the same period

    listed = (await api.get("/api/v1/pharmacists/on-duty", headers=auth)).json()
    assert {"pharmacist_id": pharmacist_id, "name": "王药师", "since": signed_in.json()["since"]} in listed

    signed_out = await api.post("/api/v1/pharmacists/me/duty", json={"on_duty": False}, headers=auth)
    assert signed_out.json() == {"pharmacist_id": pharmacist_id, "on_duty": False, "since": None}
    await api.post("/api/v1/pharmacists/me/duty", json={"on_duty": False}, headers=auth)
    listed = (await api.get("/api/v1/pharmacists/on-duty", headers=auth)).json()
    assert pharmacist_id not in {p["pharmacist_id"] for p in listed}

    async with sessions() as session:
        periods = (
            (await session.execute(select(PharmacistDuty).where(col(PharmacistDuty.pharmacist_id) == pharmacist_id)))
            .scalars()
            .all()
        )
    assert len(periods) == 1 and periods[0].ended_at is not None and periods[0].ended_at > periods[0].started_at
    assert await _audits(sessions, pharmacist_id, "pharmacist.duty_on") == 1
    assert await _audits(sessions, pharmacist_id, "pharmacist.duty_off") == 1

    # A second shift is a second period.
    await api.post("/api/v1/pharmacists/me/duty", json={"on_duty": True}, headers=auth)
    async with sessions() as session:
        count = await session.scalar(select(func.count()).where(col(PharmacistDuty.pharmacist_id) == pharmacist_id))
    assert count == 2
    await api.post("/api/v1/pharmacists/me/duty", json={"on_duty": False}, headers=auth)


async def test_only_pharmacists_keep_duty(api, sessions) -> None:
    doctor, _ = await make_user(sessions, Role.DOCTOR)
    patient, _ = await make_user(sessions, Role.PATIENT)
    admin, _ = await make_user(sessions, Role.ADMIN)
    doctor_auth = await login(api, doctor)
    refused = await api.post("/api/v1/pharmacists/me/duty", json={"on_duty": True}, headers=doctor_auth)
    assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN"
    listing = await api.get("/api/v1/pharmacists/on-duty", headers=await login(api, patient))
    assert listing.status_code == 403
    assert (await api.get("/api/v1/pharmacists/on-duty", headers=await login(api, admin))).status_code == 200
