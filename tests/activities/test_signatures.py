"""Doctors' and pharmacists' signatures: SM2 over the digest of what they sign, a trusted timestamp over the
signature, and checks that catch any change to either."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from activities.adapters.signer import Signer
from activities.adapters.signer.sandbox import SandboxSigner
from activities.adapters.tsa.sandbox import SandboxTsa
from activities.signatures import Signatures
from core.crypto.sm import sm3_hex
from core.crypto.sm2 import InvalidSignature
from core.crypto.tsp import TimestampError
from core.ledger.service import EvidenceLedger
from models.ledger import Evidence
from models.signature import canonical_json

DIGEST = sm3_hex(b'{"prescription_id":"rx-1","revision":1}')
RX = {"kind": "rx.signed", "subject": "prescription:rx-1"}


@pytest.fixture(scope="module")
def tsa(settings) -> SandboxTsa:
    return SandboxTsa(None, settings)  # type: ignore[arg-type]


@pytest.fixture
def signer(sessions, settings) -> SandboxSigner:
    return SandboxSigner(sessions, settings)


@pytest.fixture
def ledger(sessions) -> EvidenceLedger:
    return EvidenceLedger(sessions)


async def test_a_signature_verifies_is_timestamped_and_goes_on_the_ledger(signer, tsa, ledger) -> None:
    assert isinstance(signer, Signer)
    before = datetime.now(UTC)
    record = await Signatures(signer, tsa, ledger).sign("u-doc-1", DIGEST, before, "超剂量，病情需要", **RX)
    record.verify(tsa.trust_anchors)
    assert record.signature is not None and record.timestamp is not None
    assert record.signature.algorithm == "SM2-SM3" and record.signature.signer_id == "u-doc-1"
    assert before <= record.timestamp.gen_time <= datetime.now(UTC)
    # Stored as JSON (workflow state, the read model) and read back, it still verifies.
    type(record).model_validate_json(record.model_dump_json()).verify(tsa.trust_anchors)
    # The signed record is evidence: its digest went on the ledger when it was signed, so appending it again finds
    # that entry.
    before = await ledger.size()
    entry = await ledger.append(
        Evidence(
            kind="rx.signed",
            subject="prescription:rx-1",
            digest=sm3_hex(canonical_json(record.model_dump(mode="json"))),
        )
    )
    assert await ledger.size() == before and entry.subject == "prescription:rx-1"


async def test_a_changed_digest_or_signature_is_caught(signer, tsa, ledger) -> None:
    record = await Signatures(signer, tsa, ledger).sign("u-doc-1", DIGEST, datetime.now(UTC), None, **RX)
    with pytest.raises(InvalidSignature):
        record.model_copy(update={"digest": sm3_hex(b"something else")}).verify(tsa.trust_anchors)
    other = await Signatures(signer, tsa, ledger).sign("u-doc-1", DIGEST, datetime.now(UTC), None, **RX)
    assert other.signature is not None and record.signature is not None
    # Another signature of the same digest (SM2 signatures are randomised) does not match the first timestamp.
    with pytest.raises(TimestampError):
        record.model_copy(update={"signature": other.signature}).verify(tsa.trust_anchors)


async def test_each_person_signs_with_their_own_key_which_survives_a_restart(sessions, settings, signer) -> None:
    doctor = await signer.sign(signer_id="u-doc-1", data=b"x")
    again = await SandboxSigner(sessions, settings).sign(signer_id="u-doc-1", data=b"x")
    pharmacist = await signer.sign(signer_id="u-pharm-1", data=b"x")
    assert doctor.public_key_pem == again.public_key_pem != pharmacist.public_key_pem
    doctor.verify(b"x")
    with pytest.raises(InvalidSignature):
        pharmacist.model_copy(update={"public_key_pem": doctor.public_key_pem}).verify(b"x")


async def test_a_record_without_a_signature_does_not_verify(signer, tsa, ledger) -> None:
    record = await Signatures(signer, tsa, ledger).sign("u-doc-1", DIGEST, datetime.now(UTC), None, **RX)
    with pytest.raises(ValueError, match="no SM2 signature"):
        record.model_copy(update={"signature": None, "timestamp": None}).verify(tsa.trust_anchors)
