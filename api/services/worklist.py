"""A doctor's worklists (8.2.1.2): the visits they are to accept, are seeing and have seen, their own and those they
were invited into (会诊), from the read model the Visit flows keep in PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from activities.visits import birth_date_of
from api.schemas.doctor_day import Worklist, WorklistItem, WorklistPatient
from api.services.access import treated_by
from core.crypto.sm import FieldCipher
from models import idcard
from models.common import HOSPITAL_TZ
from models.guardian import age_in_years
from models.tables import Disease, Patient, Visit
from models.visit import VisitStage


def mask_name(name: str | None) -> str:
    """The family name and a star per other character: 张三 → 张*, 欧阳明 → 欧**."""
    if not name:
        return ""
    return name[0] + "*" * (len(name) - 1)


def patient_facts(cipher: FieldCipher, patient: Patient) -> tuple[str, str | None, date | None]:
    """Name, sex and birth date, the last two from the ID-card number where not recorded on their own."""
    number = cipher.decrypt("id_card", patient.id_card_enc)
    sex = patient.sex or (idcard.sex(number) if number and idcard.is_valid(number) else None)
    name = cipher.decrypt("name", patient.name_enc) or ""
    return name, sex, birth_date_of(cipher, patient.birth_date, patient.id_card_enc)


async def worklist(session: AsyncSession, cipher: FieldCipher, doctor_id: str, finished_limit: int) -> Worklist:
    base = (
        select(Visit, Patient, col(Disease.name))
        .join(Patient, col(Patient.id) == col(Visit.patient_id))
        .outerjoin(Disease, col(Disease.code) == col(Visit.disease_code))
        .where(treated_by(doctor_id))
    )
    open_rows = await session.execute(
        base.where(col(Visit.stage).in_([VisitStage.WAITING_DOCTOR.value, VisitStage.IN_CONSULT.value])).order_by(
            col(Visit.starts_at)
        )
    )
    finished_rows = await session.execute(
        base.where(col(Visit.stage) == VisitStage.FINISHED.value)
        .order_by(col(Visit.updated_at).desc())
        .limit(finished_limit)
    )
    today = datetime.now(HOSPITAL_TZ).date()

    def item(visit: Visit, patient: Patient, disease_name: str | None) -> WorklistItem:
        name, sex, birth = patient_facts(cipher, patient)
        return WorklistItem(
            visit_id=visit.id,
            stage=VisitStage(visit.stage),
            role="attending" if visit.doctor_id == doctor_id else "consultant",
            starts_at=visit.starts_at,
            queue_no=visit.queue_no,
            disease_code=visit.disease_code,
            disease_name=disease_name,
            patient=WorklistPatient(
                patient_id=patient.id,
                name_masked=mask_name(name),
                sex=sex,
                age=age_in_years(birth, today) if birth else None,
            ),
            abort_reason=visit.abort_reason,
        )

    opened = [item(*row) for row in open_rows.all()]
    return Worklist(
        waiting=[i for i in opened if i.stage is VisitStage.WAITING_DOCTOR],
        in_consult=[i for i in opened if i.stage is VisitStage.IN_CONSULT],
        finished=[item(*row) for row in finished_rows.all()],
    )
