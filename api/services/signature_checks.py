"""Checking a stored signature again: it must sign exactly what is stored now, and its timestamp must cover it."""

from __future__ import annotations

from collections.abc import Sequence

from asn1crypto import x509
from pydantic import BaseModel

from core.crypto.sm2 import InvalidSignature
from core.crypto.tsp import TimestampError
from models.signature import SignatureRecord


class SignatureState(BaseModel):
    valid: bool
    # Why not, in zh-CN.
    problem: str | None = None


def signature_state(
    record: SignatureRecord, digest: str, anchors: Sequence[x509.Certificate], what: str
) -> SignatureState:
    """`digest` is recomputed from the stored content; `what` names that content in the message ("处方", "病历")."""
    if record.digest != digest:
        return SignatureState(valid=False, problem=f"{what}内容与签名时不一致")
    try:
        record.verify(anchors)
    except ValueError:
        return SignatureState(valid=False, problem="该签名没有电子签名或可信时间戳")
    except InvalidSignature:
        return SignatureState(valid=False, problem="电子签名验证失败")
    except TimestampError:
        return SignatureState(valid=False, problem="可信时间戳验证失败")
    return SignatureState(valid=True)
