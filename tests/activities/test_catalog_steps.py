"""Catalogue steps against PostgreSQL: an approved change is applied once with the entry as it was before; a change
the catalogue no longer allows is refused; a rejection changes nothing; a disabled 饮片 blocks prescribing."""

from __future__ import annotations

import uuid

import pytest
from temporalio.exceptions import ApplicationError

from activities.catalog import CatalogActivities
from activities.prescriptions import PrescriptionActivities
from activities.rules.engine import default_engine
from core.crypto.sm import FieldCipher
from models.catalog import CatalogDecision, ChangeKind
from models.prescription import PrescriptionDraft, RxCheckRequest, RxItem
from models.tables import CatalogChange, Herb
from tests.api.consult_helpers import give_identity, make_consult_visit

APPROVE = CatalogDecision(approver_user_id="u-senior", approve=True, note="同意")


def _name() -> str:
    return f"测试饮片{uuid.uuid4().hex[:8]}"


async def _change(sessions, kind: ChangeKind, name: str, **fields: object) -> str:  # type: ignore[no-untyped-def]
    change_id = f"cc-{uuid.uuid4().hex[:10]}"
    async with sessions() as session, session.begin():
        session.add(
            CatalogChange(id=change_id, kind=kind, herb_name=name, fields=fields, reason="测试", proposed_by="ph-1")
        )
    return change_id


async def _get(sessions, model, key):  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return await session.get(model, key)


async def test_each_kind_of_change_is_applied_once_with_the_entry_before(sessions) -> None:  # type: ignore[no-untyped-def]
    steps = CatalogActivities(sessions)
    name = _name()
    code = f"YP{uuid.uuid4().hex[:6]}"
    added = await _change(sessions, ChangeKind.ADD, name, code=code, price_fen_per_100g=450, control_class="toxic")
    await steps.publish_change(added, APPROVE)
    await steps.publish_change(added, APPROVE)  # a retried step
    herb = await _get(sessions, Herb, name)
    assert (herb.code, herb.price_fen_per_100g, herb.control_class, herb.active, herb.stock_g) == (
        code, 450, "toxic", True, 0,
    )  # fmt: skip
    change = await _get(sessions, CatalogChange, added)
    assert (change.status, change.decided_by, change.note, change.before) == ("published", "u-senior", "同意", None)

    updated = await _change(sessions, ChangeKind.UPDATE, name, price_fen_per_100g=520, transport_note="避光")
    await steps.publish_change(updated, APPROVE)
    herb = await _get(sessions, Herb, name)
    assert (herb.price_fen_per_100g, herb.transport_note, herb.code) == (520, "避光", code)
    before = (await _get(sessions, CatalogChange, updated)).before
    assert before["price_fen_per_100g"] == 450 and before["transport_note"] is None

    disabled = await _change(sessions, ChangeKind.DISABLE, name)
    await steps.publish_change(disabled, APPROVE)
    assert (await _get(sessions, Herb, name)).active is False
    assert (await _get(sessions, CatalogChange, disabled)).before["active"] is True


async def test_what_the_catalogue_no_longer_allows_is_refused_and_a_rejection_changes_nothing(sessions) -> None:  # type: ignore[no-untyped-def]
    steps = CatalogActivities(sessions)
    name = _name()
    await steps.publish_change(await _change(sessions, ChangeKind.ADD, name, price_fen_per_100g=100), APPROVE)
    for change_id in (
        await _change(sessions, ChangeKind.ADD, name, price_fen_per_100g=200),  # added meanwhile
        await _change(sessions, ChangeKind.DISABLE, _name()),  # gone
    ):
        with pytest.raises(ApplicationError) as refused:
            await steps.publish_change(change_id, APPROVE)
        assert refused.value.type == "CATALOG_CONFLICT" and refused.value.non_retryable
        assert (await _get(sessions, CatalogChange, change_id)).status == "pending"
        await steps.reject_change(change_id, CatalogDecision(approver_user_id="u-senior", approve=False, note="冲突"))
    # A code another entry took meanwhile.
    other = _name()
    code = f"YP{uuid.uuid4().hex[:6]}"
    await steps.publish_change(await _change(sessions, ChangeKind.ADD, other, price_fen_per_100g=1, code=code), APPROVE)
    clash = await _change(sessions, ChangeKind.UPDATE, name, code=code)
    with pytest.raises(ApplicationError, match="药品代码"):
        await steps.publish_change(clash, APPROVE)
    await steps.reject_change(clash, CatalogDecision(approver_user_id="u-senior", approve=False, note="代码冲突"))

    rejected = await _change(sessions, ChangeKind.UPDATE, name, price_fen_per_100g=999)
    await steps.reject_change(rejected, CatalogDecision(approver_user_id="u-senior", approve=False, note="价格有误"))
    assert (await _get(sessions, Herb, name)).price_fen_per_100g == 100
    assert (await _get(sessions, CatalogChange, rejected)).status == "rejected"
    with pytest.raises(ApplicationError, match="不存在"):
        await steps.publish_change("cc-nobody", APPROVE)


class _Stocked:
    async def check_stock(self, *, items, doses):  # type: ignore[no-untyped-def]
        return []


async def test_a_disabled_herb_blocks_prescribing(sessions, settings) -> None:  # type: ignore[no-untyped-def]
    cipher = FieldCipher(settings.pii_key, settings.blind_index_key)
    name = _name()
    steps = CatalogActivities(sessions)
    await steps.publish_change(await _change(sessions, ChangeKind.ADD, name, price_fen_per_100g=100), APPROVE)
    visit = await make_consult_visit(sessions)
    await give_identity(sessions, cipher, visit.patient_id, "张三")
    prescriptions = PrescriptionActivities(sessions, cipher, _Stocked(), default_engine(), None)  # type: ignore[arg-type]
    draft = PrescriptionDraft(
        diagnosis="胃痞病", items=[RxItem(herb="党参", dose_g=15), RxItem(herb=name, dose_g=9)], doses=7
    )
    request = RxCheckRequest(prescription_id="rx-x", patient_id=visit.patient_id, draft=draft)
    assert "HERB_DISABLED" not in {f.code for f in (await prescriptions.check_prescription(request)).findings}

    await steps.publish_change(await _change(sessions, ChangeKind.DISABLE, name), APPROVE)
    checked = await prescriptions.check_prescription(request)
    [disabled] = [f for f in checked.findings if f.code == "HERB_DISABLED"]
    assert (disabled.severity, disabled.herbs, checked.verdict) == ("block", [name], "block")
