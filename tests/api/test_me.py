"""Patient self-service: agreements, the consent gate, the identity submission (encrypted at rest)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text, update
from sqlmodel import col

from api.consent_documents import CONSENT_DOCUMENTS
from api.consents import require_consents
from api.errors import Problem
from api.identity import normalize_id_card
from core.crypto.sm import FieldCipher
from models.common import Role
from models.tables import Patient
from tests.api.helpers import accept_all_consents, login, make_user

VALID_ID = "11010519491231002X"
IDENTITY = {
    "name": "王小明",
    "id_card_no": "11010519491231002x",
    "phone": "13912345678",
    "address": "北京市东城区某街 1 号",
}


async def _patient(api, sessions) -> tuple[str, dict[str, str]]:
    user_id, patient_id = await make_user(sessions, Role.PATIENT)
    assert patient_id is not None
    return patient_id, await login(api, user_id)


async def test_consent_documents_are_public(api) -> None:
    response = await api.get("/api/v1/consent-documents")
    assert response.status_code == 200
    documents = {doc["document"]: doc for doc in response.json()}
    assert set(documents) == {"informed_consent", "privacy_policy"}
    assert documents["informed_consent"]["title"] == "互联网诊疗知情同意书"
    assert documents["informed_consent"]["text"]


async def test_accepting_consents_records_version_and_ip(api, sessions) -> None:
    patient_id, headers = await _patient(api, sessions)
    version = CONSENT_DOCUMENTS["informed_consent"].version

    first = await api.post(
        "/api/v1/me/consents", headers=headers, json={"document": "informed_consent", "version": version}
    )
    assert first.status_code == 201
    assert first.json()["complete"] is False
    again = await api.post(
        "/api/v1/me/consents", headers=headers, json={"document": "informed_consent", "version": version}
    )
    assert again.status_code == 200

    privacy = CONSENT_DOCUMENTS["privacy_policy"]
    done = await api.post(
        "/api/v1/me/consents", headers=headers, json={"document": "privacy_policy", "version": privacy.version}
    )
    assert done.json()["complete"] is True
    async with sessions() as session:
        rows = (
            await session.execute(
                text("SELECT document, version, client_ip FROM consents WHERE patient_id = :p ORDER BY document"),
                {"p": patient_id},
            )
        ).all()
    assert [(row.document, row.version) for row in rows] == [
        ("informed_consent", version),
        ("privacy_policy", privacy.version),
    ]
    assert all(row.client_ip for row in rows)

    me = (await api.get("/api/v1/me", headers=headers)).json()
    assert me["patient"]["consents_complete"] is True
    assert all(consent["accepted_at"] for consent in me["patient"]["consents"])


async def test_outdated_or_unknown_consent_is_refused(api, sessions) -> None:
    _, headers = await _patient(api, sessions)
    outdated = await api.post(
        "/api/v1/me/consents", headers=headers, json={"document": "privacy_policy", "version": "0.1"}
    )
    assert outdated.status_code == 409
    assert outdated.json()["code"] == "CONSENT_VERSION_OUTDATED"
    unknown = await api.post("/api/v1/me/consents", headers=headers, json={"document": "cookies", "version": "1.0"})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "body.document"


async def test_only_patients_accept_consents(api, sessions) -> None:
    doctor_user, _ = await make_user(sessions, Role.DOCTOR)
    response = await api.post(
        "/api/v1/me/consents",
        headers=await login(api, doctor_user),
        json={"document": "privacy_policy", "version": "1.0"},
    )
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"


async def test_require_consents_names_what_is_missing(api, sessions) -> None:
    patient_id, headers = await _patient(api, sessions)
    async with sessions() as session:
        with pytest.raises(Problem) as missing_both:
            await require_consents(session, patient_id)
    assert missing_both.value.status == 403
    assert missing_both.value.code == "CONSENT_REQUIRED"
    assert "《互联网诊疗知情同意书》" in (missing_both.value.detail or "")
    assert "《隐私政策》" in (missing_both.value.detail or "")

    await api.post("/api/v1/me/consents", headers=headers, json={"document": "informed_consent", "version": "1.0"})
    async with sessions() as session:
        with pytest.raises(Problem) as missing_one:
            await require_consents(session, patient_id)
    assert missing_one.value.extra["missing"] == [{"document": "privacy_policy", "version": "1.0"}]
    assert "知情同意书" not in (missing_one.value.detail or "")

    await accept_all_consents(sessions, patient_id)
    async with sessions() as session:
        await require_consents(session, patient_id)


async def test_identity_is_stored_encrypted_and_verification_is_started(app, api, sessions, settings) -> None:
    patient_id, headers = await _patient(api, sessions)
    async with sessions() as session, session.begin():
        await session.execute(
            update(Patient).where(col(Patient.id) == patient_id).values(verified_at=datetime.now(UTC))
        )
    started: list[tuple[str, str]] = []

    async def start_verification(patient: str, submission: str) -> None:
        started.append((patient, submission))

    app.state.ctx.on_identity_submitted = start_verification
    response = await api.put("/api/v1/me/identity", headers=headers, json=IDENTITY)
    assert response.status_code == 202
    assert response.json() == {"status": "verifying"}

    async with sessions() as session:
        row = (await session.execute(text("SELECT * FROM patients WHERE id = :p"), {"p": patient_id})).mappings().one()
    stored = " ".join(str(value) for value in row.values())
    for plaintext in ("王小明", VALID_ID, VALID_ID.lower(), "13912345678", "北京市东城区"):
        assert plaintext not in stored
    cipher = FieldCipher(settings.pii_key, settings.blind_index_key)
    assert cipher.decrypt("id_card", row["id_card_enc"]) == VALID_ID
    assert cipher.decrypt("name", row["name_enc"]) == "王小明"
    assert cipher.decrypt("address", row["address_enc"]) == IDENTITY["address"]
    assert row["id_card_index"] == cipher.blind_index("id_card", VALID_ID)
    assert row["phone_index"] == cipher.blind_index("phone", "13912345678")
    assert row["verified_at"] is None
    assert len(row["identity_submission"]) == 64
    assert started == [(patient_id, row["identity_submission"])]

    patient = (await api.get("/api/v1/me", headers=headers)).json()["patient"]
    assert patient["verification"] == "verifying"
    assert patient["verified"] is False
    assert patient["phone_masked"] == "139****5678"
    assert patient["id_card_masked"] == "110***********002X"
    assert patient["name_masked"] == "**明"

    # The same facts again give the same submission id, so a retry finds the same verification.
    await api.put("/api/v1/me/identity", headers=headers, json={**IDENTITY, "address": None})
    assert started[1] == started[0]


async def test_identity_without_a_hook_is_still_accepted(api, sessions) -> None:
    _, headers = await _patient(api, sessions)
    response = await api.put("/api/v1/me/identity", headers=headers, json=IDENTITY)
    assert response.status_code == 202


@pytest.mark.parametrize(
    "id_card_no",
    ["110105194912310021", "11010519491231002", "1101051949123100XX", "110105194913310024", "abcdefghijklmnopqr"],
)
async def test_invalid_id_card_is_refused(api, sessions, id_card_no) -> None:
    patient_id, headers = await _patient(api, sessions)
    response = await api.put("/api/v1/me/identity", headers=headers, json={**IDENTITY, "id_card_no": id_card_no})
    assert response.status_code == 422
    assert response.json()["code"] == "INVALID_ID_CARD"
    async with sessions() as session:
        assert (await session.get(Patient, patient_id)).id_card_enc is None  # type: ignore[union-attr]


async def test_invalid_phone_is_a_field_error(api, sessions) -> None:
    _, headers = await _patient(api, sessions)
    response = await api.put("/api/v1/me/identity", headers=headers, json={**IDENTITY, "phone": "0139123456"})
    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_FAILED"
    assert [error["field"] for error in response.json()["errors"]] == ["body.phone"]


def test_id_card_check_character_and_birth_date() -> None:
    today = date(2026, 1, 1)
    assert normalize_id_card(" 11010519491231002x ", today) == VALID_ID
    assert normalize_id_card("110105194912310021", today) is None
    # A well-formed number whose birth date lies in the future is not a real one.
    body = "11010520300101001"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]
    assert normalize_id_card(body + check, today) is None
    assert normalize_id_card(body + check, date(2031, 1, 1)) == body + check
