from __future__ import annotations

import uuid

import pytest

from activities.adapters.supervision.contract import SupervisionContract
from activities.adapters.supervision.sandbox import SandboxSupervision
from core.crypto.sm import sm3_hex
from models import idcard
from models.institution import InstitutionFiling, RegistrationState
from models.signature import canonical_json
from models.supervision import SupervisionKind, SupervisionRecord


def filing() -> InstitutionFiling:
    code = f"PDY{uuid.uuid4().hex[:10].upper()}"
    return InstitutionFiling(
        code=code, name="岐黄中医互联网医院", kind="互联网医院", licence_no=code, access_ips=["203.0.113.10"]
    )


def record(kind: SupervisionKind, **changes: object) -> SupervisionRecord:
    """A record of `kind` as the upload activity builds it, which the platform accepts unless `changes` spoil it."""
    people = {
        "doctor": {"id": "doc-1", "name": "李时珍", "title": "主任医师", "licence_no": "110420000012345"},
        "patient": {"id": "pat-1", "name": "张三", "id_card_no": idcard.random_valid(), "sex": "male"},
    }
    if kind is SupervisionKind.REVISIT:
        body = {"visit_id": "v-1", "stage": "finished", **people, "record": {"tcm_disease": "胃脘痛"}}
    else:
        body = {
            "prescription_id": "rx-1",
            "stage": "completed",
            **people,
            "items": [{"herb": "党参", "dose_g": 15}],
            "review": {"pharmacist_id": "ph-1", "name": "王药师", "licence_no": "YS-0001"},
        }
    body.update(changes)
    record_id = f"{kind}-{uuid.uuid4().hex[:12]}"
    return SupervisionRecord(kind=kind, record_id=record_id, digest=sm3_hex(canonical_json(body)), body=body)


class Filings:
    def __init__(self, adapter: SandboxSupervision) -> None:
        self.adapter = adapter

    async def acceptable(self) -> InstitutionFiling:
        return filing()

    async def refused(self) -> InstitutionFiling:
        refused = filing()
        self.adapter.refused.add(refused.code)
        return refused

    async def records(self, kind: SupervisionKind) -> tuple[list[SupervisionRecord], SupervisionRecord]:
        unsigned_doctor = {"id": "doc-2", "name": "无证医生", "title": "医师", "licence_no": None}
        return [record(kind), record(kind)], record(kind, doctor=unsigned_doctor)


@pytest.fixture
def adapter(sessions, settings) -> SandboxSupervision:  # type: ignore[no-untyped-def]
    return SandboxSupervision(sessions, settings)


@pytest.fixture
def simulator(adapter: SandboxSupervision) -> Filings:
    return Filings(adapter)


class TestSandboxSupervision(SupervisionContract):
    pass


async def test_the_decision_comes_after_the_pending_polls(adapter: SandboxSupervision) -> None:
    adapter.pending_polls = 2
    receipt = await adapter.register_institution(idempotency_key=uuid.uuid4().hex, filing=filing())
    states = [
        (await adapter.registration_status(idempotency_key=uuid.uuid4().hex, platform_ref=receipt.platform_ref)).state
        for _ in range(3)
    ]
    assert states == [RegistrationState.PENDING, RegistrationState.PENDING, RegistrationState.APPROVED]


@pytest.mark.parametrize(
    ("kind", "spoil", "reason"),
    [
        (SupervisionKind.REVISIT, {"record": None}, "缺少病历中医诊断"),
        (SupervisionKind.REVISIT, {"patient": {"name": "张三", "id_card_no": "110101199001011234"}}, "身份证号"),
        (SupervisionKind.PRESCRIPTION, {"review": None}, "审方药师"),
        (SupervisionKind.PRESCRIPTION, {"items": []}, "药品明细"),
    ],
)
async def test_what_the_sandbox_platform_rejects(
    adapter: SandboxSupervision, kind: SupervisionKind, spoil: dict[str, object], reason: str
) -> None:
    [outcome] = (
        await adapter.upload_records(idempotency_key=uuid.uuid4().hex, kind=kind, records=[record(kind, **spoil)])
    ).outcomes
    assert not outcome.accepted and outcome.code == "INVALID_RECORD" and reason in (outcome.reason or "")


async def test_an_aborted_revisit_needs_no_record_and_a_prescription_under_review_no_pharmacist(
    adapter: SandboxSupervision,
) -> None:
    records = [
        record(SupervisionKind.REVISIT, stage="aborted", record=None),
        record(SupervisionKind.PRESCRIPTION, stage="awaiting_review", review=None),
    ]
    for one in records:
        receipt = await adapter.upload_records(idempotency_key=uuid.uuid4().hex, kind=one.kind, records=[one])
        assert receipt.outcomes[0].accepted, receipt


async def test_the_platform_holds_the_last_version_it_accepted(adapter: SandboxSupervision) -> None:
    first = record(SupervisionKind.REVISIT)
    kind = SupervisionKind.REVISIT
    assert await adapter.held(kind, first.record_id) is None
    await adapter.upload_records(idempotency_key=uuid.uuid4().hex, kind=kind, records=[first])
    assert await adapter.held(kind, first.record_id) == first.digest
    changed = record(kind, stage="aborted").model_copy(update={"record_id": first.record_id})
    await adapter.upload_records(idempotency_key=uuid.uuid4().hex, kind=kind, records=[changed])
    assert await adapter.held(kind, first.record_id) == changed.digest
    spoiled = record(kind, record=None).model_copy(update={"record_id": first.record_id})
    await adapter.upload_records(idempotency_key=uuid.uuid4().hex, kind=kind, records=[spoiled])
    assert await adapter.held(kind, first.record_id) == changed.digest  # a rejected version replaces nothing
