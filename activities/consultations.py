"""Multi-doctor consultation steps (会诊, 8.2.3.5): store an invitation, and a consultant's signed opinion, which is
locked once signed."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.errors import business_error
from activities.signatures import Signatures
from models.consultation import GiveOpinion, InviteConsultant, opinion_digest
from models.signature import SignatureRecord
from models.tables import Doctor, VisitConsultant
from models.visit import VisitInput


class ConsultationActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], signatures: Signatures) -> None:
        self._sessions = sessions
        self._signatures = signatures

    @activity.defn
    async def record_invitation(self, visit: VisitInput, invite: InviteConsultant) -> None:
        """The invited doctor must exist and practise; inviting them again changes nothing."""
        async with self._sessions() as session, session.begin():
            active = await session.scalar(select(col(Doctor.active)).where(col(Doctor.id) == invite.consultant_id))
            if active is None:
                raise business_error("CONSULTANT_NOT_FOUND", "受邀医生不存在")
            if not active:
                raise business_error("CONSULTANT_INACTIVE", "受邀医生已停诊或离职，不能邀请会诊")
            await session.execute(
                insert(VisitConsultant)
                .values(
                    visit_id=visit.visit_id,
                    doctor_id=invite.consultant_id,
                    invited_by=invite.doctor_id,
                    reason=invite.reason,
                )
                .on_conflict_do_nothing(index_elements=["visit_id", "doctor_id"])
            )

    @activity.defn
    async def sign_opinion(self, visit: VisitInput, opinion: GiveOpinion) -> SignatureRecord:
        """The consultant's SM2 signature over the opinion, timestamped and on the evidence ledger, stored with it. A
        retry after the signature was stored answers with that signature; a signed opinion never changes."""
        async with self._sessions() as session:
            row = await session.get(VisitConsultant, (visit.visit_id, opinion.doctor_id))
        if row is None:
            raise business_error("NOT_A_CONSULTANT", "不是本次复诊的会诊医生")
        if row.opinion_signature is not None:
            return SignatureRecord.model_validate(row.opinion_signature)
        signed_at = datetime.now(UTC)
        digest = opinion_digest(visit.visit_id, opinion.doctor_id, opinion.opinion, signed_at)
        signature = await self._signatures.sign(
            opinion.doctor_id, digest, signed_at, None, kind="consult.opinion", subject=f"visit:{visit.visit_id}"
        )
        async with self._sessions() as session, session.begin():
            stored = await session.execute(
                update(VisitConsultant)
                .where(
                    col(VisitConsultant.visit_id) == visit.visit_id,
                    col(VisitConsultant.doctor_id) == opinion.doctor_id,
                    col(VisitConsultant.opinion_at).is_(None),
                )
                .values(
                    opinion=opinion.opinion, opinion_signature=signature.model_dump(mode="json"), opinion_at=signed_at
                )
                .returning(col(VisitConsultant.visit_id))
            )
            if stored.first() is None:  # signed meanwhile by an earlier attempt of this activity
                raced = await session.get(VisitConsultant, (visit.visit_id, opinion.doctor_id))
                assert raced is not None and raced.opinion_signature is not None
                return SignatureRecord.model_validate(raced.opinion_signature)
        return signature
