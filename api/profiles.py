"""The patient's view of their own record: identity masked, verification state, agreements."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from api.consents import consent_statuses
from api.queries.patients import get_patient
from api.schemas.me import PatientProfile, Verification
from core.crypto.sm import FieldCipher, mask
from models.tables import Patient


def verification_state(patient: Patient) -> Verification:
    if patient.verified_at is not None:
        return "verified"
    if patient.verify_failure is not None:
        return "failed"
    if patient.identity_submission is not None:
        return "verifying"
    return "unsubmitted"


async def patient_profile(session: AsyncSession, cipher: FieldCipher, patient_id: str) -> PatientProfile:
    patient = await get_patient(session, patient_id)
    consents = await consent_statuses(session, patient_id)
    return PatientProfile(
        id=patient.id,
        # Only the last character of the name, the ends of the phone and ID numbers: enough to recognise, no more.
        name_masked=mask(cipher.decrypt("name", patient.name_enc), keep_start=0, keep_end=1),
        phone_masked=mask(cipher.decrypt("phone", patient.phone_enc)),
        id_card_masked=mask(cipher.decrypt("id_card", patient.id_card_enc)),
        verification=verification_state(patient),
        verified=patient.verified_at is not None,
        verified_at=patient.verified_at,
        verify_failure=patient.verify_failure,
        consents=consents,
        consents_complete=all(consent.accepted for consent in consents),
    )
