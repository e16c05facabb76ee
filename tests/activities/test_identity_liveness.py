"""The liveness steps of real-name verification against PostgreSQL and the sandbox provider: the check reads the
submitted identity, its outcome is kept once per live check."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import col

from activities.adapters.liveness.sandbox import OTHER_FACE, PASS, SandboxLiveness
from activities.adapters.realname.sandbox import SandboxRealName
from activities.identity import IdentityActivities
from api.identity import identity_columns
from core.crypto.sm import FieldCipher
from models import idcard
from models.common import Role
from models.identity import IdentityCheckInput
from models.tables import LivenessCheck, Patient
from tests.api.helpers import make_user


async def _submitted(sessions, cipher: FieldCipher, submission: str) -> str:  # type: ignore[no-untyped-def]
    _, patient_id = await make_user(sessions, Role.PATIENT)
    assert patient_id is not None
    columns = identity_columns(cipher, name="王小明", id_card=idcard.random_valid(), phone="13912345678", address=None)
    async with sessions() as session, session.begin():
        row = await session.get(Patient, patient_id)
        assert row is not None
        for name, value in {**columns, "identity_submission": submission}.items():
            setattr(row, name, value)
    return patient_id


@pytest.fixture
def cipher(settings) -> FieldCipher:  # type: ignore[no-untyped-def]
    return FieldCipher(settings.pii_key, settings.blind_index_key)


async def test_checks_are_made_and_kept_once(sessions, settings, cipher) -> None:  # type: ignore[no-untyped-def]
    steps = IdentityActivities(
        sessions, cipher, SandboxRealName(sessions, settings), SandboxLiveness(sessions, settings)
    )
    patient_id = await _submitted(sessions, cipher, "e" * 64)
    passing = IdentityCheckInput(patient_id=patient_id, submission="e" * 64, liveness_token=f"{PASS}1")
    failing = passing.model_copy(update={"liveness_token": f"{OTHER_FACE}1"})

    passed = await steps.check_liveness(passing)
    failed = await steps.check_liveness(failing)
    assert passed.passed and not failed.passed and failed.reason == "人脸与身份证照片不一致"
    for check, result in ((passing, passed), (failing, failed), (passing, passed)):
        await steps.record_liveness(check, result)

    async with sessions() as session:
        rows = (
            (
                await session.execute(
                    select(LivenessCheck)
                    .where(col(LivenessCheck.patient_id) == patient_id)
                    .order_by(col(LivenessCheck.id))
                )
            )
            .scalars()
            .all()
        )
    assert [(row.passed, row.score, row.reason) for row in rows] == [
        (True, 96, None),
        (False, 31, "人脸与身份证照片不一致"),
    ]
    assert all(f"{PASS}1" not in row.token_digest for row in rows)


async def test_without_a_provider_the_step_waits_to_be_configured(sessions, settings, cipher) -> None:  # type: ignore[no-untyped-def]
    steps = IdentityActivities(sessions, cipher, SandboxRealName(sessions, settings))
    patient_id = await _submitted(sessions, cipher, "f" * 64)
    check = IdentityCheckInput(patient_id=patient_id, submission="f" * 64, liveness_token=f"{PASS}1")
    # Not a business refusal: retried until the worker is configured like the API that took the token.
    with pytest.raises(RuntimeError, match="no liveness adapter"):
        await steps.check_liveness(check)
