"""The guardian and the physician who accompany a child under six (8.1.2.1 c), recorded for the visit before any
prescription is issued. Names and the ID-card number are PII: SM4-GCM ciphertext (`*_enc`) with a blind index of
the guardian's ID-card number, as for patients."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.tables._types import Timestamp


class VisitGuardian(SQLModel, table=True):
    __tablename__ = "visit_guardians"

    visit_id: str = Field(primary_key=True, foreign_key="visits.id", max_length=80)
    patient_id: str = Field(foreign_key="patients.id", index=True, max_length=40)
    guardian_name_enc: str
    guardian_id_card_enc: str
    guardian_id_card_index: str = Field(index=True, max_length=64)
    # 与患儿关系: 父亲, 母亲, …
    relationship: str = Field(max_length=16)
    physician_name_enc: str
    # 医师执业证书编码 of the accompanying physician.
    physician_licence_no: str = Field(max_length=32)
    recorded_by: str = Field(foreign_key="doctors.id", max_length=40)
    recorded_at: datetime = Timestamp(default_now=True)
