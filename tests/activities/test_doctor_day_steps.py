"""Database steps of the doctor's day against PostgreSQL: notices on every configured channel (8.2.1.1), the guardian
check before prescribing for a child under six (8.1.2.1 c), consultation invitations and signed opinions (8.2.3.5)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlmodel import col
from temporalio.exceptions import ApplicationError

from activities.adapters.registry import load_adapters
from activities.consultations import ConsultationActivities
from activities.notices import NoticeActivities
from activities.signatures import Signatures
from activities.visits import VisitActivities
from api.identity import identity_columns
from core.crypto.sm import FieldCipher
from core.ledger.service import EvidenceLedger
from models import idcard
from models.common import HOSPITAL_TZ, Channel, Role
from models.consultation import GiveOpinion, InviteConsultant, opinion_digest
from models.notify import Notice
from models.tables import Doctor, LedgerEntry, MfaFactor, Notification, Patient, VisitConsultant, VisitGuardian
from models.visit import VisitInput
from tests.api.consult_helpers import make_consult_visit
from tests.api.helpers import make_user, unique


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Channel, str | None]] = []
        self.keys: list[str] = []

    async def send(
        self, *, idempotency_key: str, channel: Channel, phone: str | None, user_id: str, title: str, body: str
    ) -> str:
        self.sent.append((user_id, channel, phone))
        self.keys.append(idempotency_key)
        return idempotency_key


def cipher_of(settings) -> FieldCipher:  # type: ignore[no-untyped-def]
    return FieldCipher(settings.pii_key, settings.blind_index_key)


def visit_of(consult, **changes) -> VisitInput:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    return VisitInput(
        visit_id=consult.visit_id,
        patient_id=consult.patient_id,
        doctor_id=consult.doctor_id,
        slot_id="slot-x",
        disease_code="D1",
        fee_fen=5000,
        starts_at=now,
        ends_at=now + timedelta(minutes=15),
        channel="sandbox",
        pay_window_s=60,
        accept_window_s=60,
        review_sla_s=60,
        rx_pay_window_s=60,
        delivery_sla_s=60,
    ).model_copy(update=changes)


async def test_a_doctor_is_told_on_every_configured_channel(sessions, settings) -> None:
    cipher = cipher_of(settings)
    doctor_user, doctor_id = await make_user(sessions, Role.DOCTOR)
    texting_user, texting_id = await make_user(sessions, Role.DOCTOR)
    async with sessions() as session, session.begin():
        # Only this doctor proved a phone for SMS sign-in: the one number on record for staff.
        session.add(
            MfaFactor(
                user_id=texting_user,
                sms_phone_enc=cipher.encrypt("phone", "13900001111"),
                sms_enrolled_at=datetime.now(UTC),
            )
        )
    notifier = RecordingNotifier()
    notices = NoticeActivities(sessions, cipher, notifier, [Channel.APP, Channel.SMS, Channel.WECHAT])
    key = unique("assigned")
    for ref in (doctor_id, texting_id):
        notice = Notice(
            key=f"{key}:{ref}", user_ref=f"doctor:{ref}", template="visit_assigned", params={"time": "11-30 09:00"}
        )
        assert await notices.send_notice(notice) == 1

    assert notifier.sent == [
        (doctor_user, Channel.APP, None),
        (doctor_user, Channel.WECHAT, None),  # no phone: no SMS, the other channels still go
        (texting_user, Channel.APP, "13900001111"),
        (texting_user, Channel.SMS, "13900001111"),
        (texting_user, Channel.WECHAT, "13900001111"),
    ]
    assert len(set(notifier.keys)) == 5  # each channel dedupes on its own key
    async with sessions() as session:
        inbox = (
            (await session.execute(select(col(Notification.body)).where(col(Notification.user_id) == doctor_user)))
            .scalars()
            .all()
        )
    assert inbox == ["患者已挂号您 11-30 09:00 的在线复诊，请及时接诊。"]

    # A retried step sends nothing twice: the keys are the same, and the sandbox peer dedupes on them.
    await notices.send_notice(
        Notice(key=f"{key}:{doctor_id}", user_ref=f"doctor:{doctor_id}", template="visit_assigned")
    )
    assert notifier.keys[-2:] == notifier.keys[:2]


async def _set_child(sessions, settings, patient_id: str, born: date) -> None:  # type: ignore[no-untyped-def]
    columns = identity_columns(
        cipher_of(settings), name="张小宝", id_card=idcard.make(born=born), phone="13800001111", address=None
    )
    async with sessions() as session, session.begin():
        await session.execute(update(Patient).where(col(Patient.id) == patient_id).values(**columns))


async def test_a_child_under_six_needs_the_guardian_recorded_before_prescribing(sessions, settings) -> None:
    consult = await make_consult_visit(sessions)
    steps = VisitActivities(sessions, cipher_of(settings), his=None)  # type: ignore[arg-type]
    visit = visit_of(consult)
    today = datetime.now(HOSPITAL_TZ).date()
    await _set_child(sessions, settings, consult.patient_id, today.replace(year=today.year - 4))
    with pytest.raises(ApplicationError) as refused:
        await steps.require_guardian(visit)
    assert refused.value.type == "GUARDIAN_REQUIRED" and "监护人" in refused.value.message

    cipher = cipher_of(settings)
    async with sessions() as session, session.begin():
        session.add(
            VisitGuardian(
                visit_id=consult.visit_id,
                patient_id=consult.patient_id,
                guardian_name_enc=cipher.encrypt("name", "张建国") or "",
                guardian_id_card_enc=cipher.encrypt("id_card", idcard.make(born=date(1988, 5, 1))) or "",
                guardian_id_card_index="x",
                relationship="父亲",
                physician_name_enc=cipher.encrypt("name", "刘医生") or "",
                physician_licence_no="110110000123456",
                recorded_by=consult.doctor_id,
            )
        )
    await steps.require_guardian(visit)  # recorded: no refusal


async def test_a_child_of_six_needs_no_guardian(sessions, settings) -> None:
    consult = await make_consult_visit(sessions)
    steps = VisitActivities(sessions, cipher_of(settings), his=None)  # type: ignore[arg-type]
    today = datetime.now(HOSPITAL_TZ).date()
    # Six today (the birthday counts); born on 29 Feb would have no such day in most years.
    born = today.replace(year=today.year - 6) if (today.month, today.day) != (2, 29) else date(today.year - 6, 2, 28)
    await _set_child(sessions, settings, consult.patient_id, born)
    await steps.require_guardian(visit_of(consult))


@pytest.fixture
def consultations(sessions, settings) -> ConsultationActivities:  # type: ignore[no-untyped-def]
    adapters = load_adapters(sessions, settings)
    return ConsultationActivities(sessions, Signatures(adapters.signer, adapters.tsa, EvidenceLedger(sessions)))


async def test_an_invitation_names_a_practising_doctor(sessions, settings, consultations) -> None:
    consult = await make_consult_visit(sessions)
    _, consultant = await make_user(sessions, Role.DOCTOR, display_name="王清和")
    _, retired = await make_user(sessions, Role.DOCTOR)
    assert consultant is not None and retired is not None
    async with sessions() as session, session.begin():
        await session.execute(update(Doctor).where(col(Doctor.id) == retired).values(active=False))
    visit = visit_of(consult)

    def invite(doctor_id: str) -> InviteConsultant:
        return InviteConsultant(doctor_id=consult.doctor_id, consultant_id=doctor_id, reason="请协助辨证")

    for doctor_id, code in (("doc-nobody", "CONSULTANT_NOT_FOUND"), (retired, "CONSULTANT_INACTIVE")):
        with pytest.raises(ApplicationError) as refused:
            await consultations.record_invitation(visit, invite(doctor_id))
        assert refused.value.type == code
    await consultations.record_invitation(visit, invite(consultant))
    await consultations.record_invitation(visit, invite(consultant))  # a retry changes nothing
    async with sessions() as session:
        rows = (
            (await session.execute(select(VisitConsultant).where(col(VisitConsultant.visit_id) == consult.visit_id)))
            .scalars()
            .all()
        )
    assert [(r.doctor_id, r.invited_by, r.reason) for r in rows] == [(consultant, consult.doctor_id, "请协助辨证")]


async def test_an_opinion_is_signed_once_and_verifies(sessions, settings, consultations) -> None:
    consult = await make_consult_visit(sessions)
    _, consultant = await make_user(sessions, Role.DOCTOR)
    assert consultant is not None
    visit = visit_of(consult)
    opinion = GiveOpinion(doctor_id=consultant, opinion="证属肝胃不和，建议柴胡疏肝散加减。")
    with pytest.raises(ApplicationError) as uninvited:
        await consultations.sign_opinion(visit, opinion)
    assert uninvited.value.type == "NOT_A_CONSULTANT"

    await consultations.record_invitation(
        visit, InviteConsultant(doctor_id=consult.doctor_id, consultant_id=consultant, reason="会诊")
    )
    signed = await consultations.sign_opinion(visit, opinion)
    # A retry, even with other words, answers with the stored signature and leaves the opinion as signed.
    again = await consultations.sign_opinion(visit, opinion.model_copy(update={"opinion": "改过的意见"}))
    assert again == signed
    async with sessions() as session:
        row = await session.get(VisitConsultant, (consult.visit_id, consultant))
        assert row is not None and row.opinion == opinion.opinion and row.opinion_at is not None
        on_ledger = await session.scalar(
            select(col(LedgerEntry.seq)).where(
                col(LedgerEntry.kind) == "consult.opinion", col(LedgerEntry.subject) == f"visit:{consult.visit_id}"
            )
        )
    assert on_ledger is not None
    assert signed.digest == opinion_digest(consult.visit_id, consultant, opinion.opinion, row.opinion_at)
    signed.verify(list(load_adapters(sessions, settings).tsa.trust_anchors))
