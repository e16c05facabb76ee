"""Visit steps: the slot, HIS registration, the read model, the medical record, no-shows, the guardian check."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.adapters.his import His, HisRegistration, PatientIdentity
from activities.errors import business_error, refusals_are_final
from core.crypto.sm import FieldCipher
from models import idcard
from models.common import HOSPITAL_TZ
from models.guardian import GUARDIAN_REQUIRED_MESSAGE, needs_guardian
from models.tables import AuditEvent, Doctor, NoShow, Patient, Slot, Visit, VisitGuardian
from models.visit import SlotMove, SlotMoveRequest, VisitInput, VisitState

# A slot given back returns to stock, unless its session was cancelled (停诊): then it stays closed.
_RELEASE = text(
    """
    UPDATE slots
       SET status = CASE WHEN EXISTS (SELECT 1 FROM schedules sc
                                       WHERE sc.id = slots.schedule_id AND sc.status = 'cancelled')
                         THEN 'closed' ELSE 'open' END,
           visit_id = NULL, patient_id = NULL, held_until = NULL
     WHERE id = :slot_id AND visit_id = :visit_id
    """
)

# Rebooking after a leave: one conditional UPDATE takes the new slot, as booking does, so two patients moving to the
# same slot cannot both get it. The registration is already paid, so the slot goes straight to booked.
_TAKE_FOR_REBOOK = text(
    """
    UPDATE slots s
       SET status = 'booked', visit_id = :visit_id, patient_id = :patient_id, held_until = NULL
     WHERE s.id = :to_slot_id AND s.id <> :from_slot_id
       AND s.disease_code = :disease_code AND s.fee_fen <= :max_fee_fen
       AND s.starts_at > now()
       AND (s.reserved_for IS NULL OR s.reserved_for = :patient_id)
       AND (s.status = 'open' OR (s.status = 'held' AND s.held_until < now()))
       AND NOT EXISTS (SELECT 1 FROM schedules sc WHERE sc.id = s.schedule_id AND sc.status = 'cancelled')
    RETURNING s.id
    """
)

_CLOSE_OLD = text(
    """
    UPDATE slots SET status = 'closed', visit_id = NULL, patient_id = NULL, held_until = NULL
     WHERE id = :from_slot_id AND visit_id = :visit_id
    """
)

# Why a slot could not be taken, read after the attempt failed.
_TARGET = text(
    """
    SELECT s.status, s.disease_code, s.fee_fen, s.reserved_for, s.visit_id,
           s.starts_at > now() AS upcoming, coalesce(sc.status = 'cancelled', false) AS session_cancelled
      FROM slots s LEFT JOIN schedules sc ON sc.id = s.schedule_id
     WHERE s.id = :to_slot_id
    """
)


async def load_identity(session: AsyncSession, cipher: FieldCipher, patient_id: str) -> PatientIdentity:
    """The decrypted identity HIS matches on. It stays inside the activity."""
    row = (
        await session.execute(
            select(col(Patient.name_enc), col(Patient.id_card_enc)).where(col(Patient.id) == patient_id)
        )
    ).first()
    if row is None or row.id_card_enc is None or row.name_enc is None:
        raise business_error("IDENTITY_MISSING", "患者尚未完成实名信息登记")
    return PatientIdentity(
        name=cipher.decrypt("name", row.name_enc) or "", id_card_no=cipher.decrypt("id_card", row.id_card_enc) or ""
    )


def birth_date_of(cipher: FieldCipher, birth_date: date | None, id_card_enc: str | None) -> date | None:
    """A patient's birth date: as recorded, else as their ID-card number carries it; None if neither is known."""
    if birth_date is not None:
        return birth_date
    number = cipher.decrypt("id_card", id_card_enc)
    return idcard.birth_date(number) if number and idcard.is_valid(number) else None


async def load_birth_date(session: AsyncSession, cipher: FieldCipher, patient_id: str) -> date | None:
    row = (
        await session.execute(
            select(col(Patient.birth_date), col(Patient.id_card_enc)).where(col(Patient.id) == patient_id)
        )
    ).first()
    return None if row is None else birth_date_of(cipher, row.birth_date, row.id_card_enc)


async def child_needs_guardian(session: AsyncSession, cipher: FieldCipher, patient_id: str) -> bool:
    """8.1.2.1 c: a patient under six is seen with a guardian, whose identity must be recorded before prescribing."""
    birth = await load_birth_date(session, cipher, patient_id)
    return needs_guardian(birth, datetime.now(HOSPITAL_TZ).date())


class VisitActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], cipher: FieldCipher, his: His) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._his = his

    @activity.defn
    async def record_visit(self, visit: VisitInput, state: VisitState) -> None:
        values = {
            "stage": state.stage.value,
            "doctor_id": state.doctor_id,
            "slot_id": state.slot_id,
            "starts_at": state.starts_at,
            "fee_fen": state.fee_fen,
            "bill_id": state.bill_id,
            "his_registration_no": state.his_registration_no,
            "queue_no": state.queue_no,
            "abort_reason": state.abort_reason,
            "abort_advice": state.abort_advice,
            "updated_at": datetime.now(UTC),
        }
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(Visit)
                .values(id=visit.visit_id, patient_id=visit.patient_id, disease_code=visit.disease_code, **values)
                .on_conflict_do_update(index_elements=["id"], set_=values)
            )

    @activity.defn
    async def confirm_slot(self, visit: VisitInput) -> str:
        """Held → booked once paid. The hold belongs to this visit even if its window lapsed meanwhile,
        unless another booking took the slot, in which case the visit cannot go on. Returns the name of the slot's
        doctor, which the booking notice names."""
        async with self._sessions() as session, session.begin():
            doctor_id = (
                await session.execute(
                    update(Slot)
                    .where(col(Slot.id) == visit.slot_id, col(Slot.visit_id) == visit.visit_id)
                    .values(status="booked", held_until=None)
                    .returning(col(Slot.doctor_id))
                )
            ).scalar()
            if doctor_id is None:
                raise business_error("SLOT_LOST", "号源已被他人预约")
            return await session.scalar(select(col(Doctor.name)).where(col(Doctor.id) == doctor_id)) or ""

    @activity.defn
    async def release_slot(self, visit: VisitInput) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(_RELEASE, {"slot_id": visit.slot_id, "visit_id": visit.visit_id})

    @activity.defn
    async def move_to_slot(self, move: SlotMoveRequest) -> SlotMove:
        """Take the new slot and close the old one in one transaction, or refuse with the reason."""
        params = move.model_dump()
        async with self._sessions() as session, session.begin():
            taken = (await session.execute(_TAKE_FOR_REBOOK, params)).scalar()
            if taken is None:
                target = (await session.execute(_TARGET, params)).mappings().first()
                # A retried attempt whose first try committed finds the slot already its own.
                if target is None or target["visit_id"] != move.visit_id or target["status"] != "booked":
                    raise _rebook_refusal(move, target)
            await session.execute(_CLOSE_OLD, params)
            row = (
                await session.execute(
                    select(Slot, col(Doctor.name))
                    .join(Doctor, col(Doctor.id) == col(Slot.doctor_id))
                    .where(col(Slot.id) == move.to_slot_id)
                )
            ).one()
        slot, doctor_name = row
        return SlotMove(
            slot_id=slot.id,
            doctor_id=slot.doctor_id,
            doctor_name=doctor_name,
            starts_at=slot.starts_at,
            ends_at=slot.ends_at,
            fee_fen=slot.fee_fen,
        )

    @activity.defn
    async def record_no_show(self, visit: VisitInput) -> None:
        """8.6.8: the row the booking rule counts, and its audit row. Once per visit."""
        async with self._sessions() as session, session.begin():
            recorded = await session.scalar(
                insert(NoShow)
                .values(
                    visit_id=visit.visit_id,
                    patient_id=visit.patient_id,
                    doctor_id=visit.doctor_id,
                    slot_starts_at=visit.starts_at,
                    recorded_at=datetime.now(UTC),
                )
                .on_conflict_do_nothing(index_elements=["visit_id"])
                .returning(col(NoShow.visit_id))
            )
            if recorded is not None:
                session.add(
                    AuditEvent(
                        action="visit.no_show",
                        subject_type="visit",
                        subject_id=visit.visit_id,
                        detail={"patient_id": visit.patient_id, "doctor_id": visit.doctor_id, "slot_id": visit.slot_id},
                    )
                )

    @activity.defn
    async def require_guardian(self, visit: VisitInput) -> None:
        """Refuse to prescribe for a child under six until the guardian and the accompanying physician of this visit
        are recorded (8.1.2.1 c)."""
        async with self._sessions() as session:
            if not await child_needs_guardian(session, self._cipher, visit.patient_id):
                return
            recorded = await session.scalar(
                select(col(VisitGuardian.visit_id)).where(col(VisitGuardian.visit_id) == visit.visit_id)
            )
        if recorded is None:
            raise business_error("GUARDIAN_REQUIRED", GUARDIAN_REQUIRED_MESSAGE)

    @activity.defn
    async def register_with_his(self, visit: VisitInput, sequence: int) -> HisRegistration:
        """`sequence` counts the visit's registrations: a substitution or rebooking registers it again."""
        async with self._sessions() as session:
            identity = await load_identity(session, self._cipher, visit.patient_id)
            doctor_code = (
                await session.execute(select(col(Doctor.his_code)).where(col(Doctor.id) == visit.doctor_id))
            ).scalar()
        return await refusals_are_final(
            self._his.register_visit(
                idempotency_key=f"{visit.visit_id}:his-register" + (f"-{sequence}" if sequence else ""),
                patient=identity,
                visit_id=visit.visit_id,
                doctor_code=doctor_code or visit.doctor_id,
                starts_at=visit.starts_at,
            )
        )

    @activity.defn
    async def cancel_his_registration(self, visit_id: str, his_registration_no: str) -> None:
        await self._his.cancel_registration(
            idempotency_key=f"{visit_id}:his-cancel:{his_registration_no}", his_registration_no=his_registration_no
        )


def _rebook_refusal(move: SlotMoveRequest, target: Any) -> ApplicationError:
    if target is None:
        return business_error("NOT_FOUND", f"号源 {move.to_slot_id} 不存在")
    if move.to_slot_id == move.from_slot_id:
        return business_error("REBOOK_SAME_SLOT", "请选择其他号源")
    if target["disease_code"] != move.disease_code:
        return business_error("REBOOK_DISEASE_MISMATCH", "只能改约同一病种的号源")
    if target["session_cancelled"] or target["status"] == "closed" or not target["upcoming"]:
        return business_error("SLOT_CLOSED", "该号源已停诊、已关闭或已过就诊时间，请选择其他号源")
    if target["reserved_for"] is not None and target["reserved_for"] != move.patient_id:
        return business_error("SLOT_RESERVED", "该加号由医生为指定患者保留，请选择其他号源")
    if target["fee_fen"] > move.max_fee_fen:
        return business_error(
            "REBOOK_FEE_HIGHER",
            f"该号源挂号费 {_yuan(target['fee_fen'])} 元高于已付的 {_yuan(move.max_fee_fen)} 元，"
            "不能改约，请选择挂号费不高于原号源的号源，或选择退款",
        )
    return business_error("SLOT_TAKEN", "该号源已被其他患者预约，请选择其他号源")


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"
