"""Identity submissions for real-name verification: ID-card number format (GB 11643) and the submission digest."""

from __future__ import annotations

import json
from datetime import date

from core.crypto.sm import FieldCipher
from models import idcard


def normalize_id_card(raw: str, today: date) -> str | None:
    """The 18-character resident ID number in canonical form (upper-case X), or None if it is not a valid one:
    the GB 11643 check character must match and the embedded birth date be a real date not after `today`."""
    if not idcard.is_valid(raw):
        return None
    value = idcard.normalize(raw)
    return value if date(1900, 1, 1) <= idcard.birth_date(value) <= today else None


def submission_digest(cipher: FieldCipher, name: str, id_card: str, phone: str) -> str:
    """Stable id of what is verified (name, ID number, phone), e.g. for the verification workflow's id.

    Keyed (HMAC-SM3 under the blind-index key) rather than a bare hash: the digest travels into workflow ids and
    the Temporal UI, and an unkeyed hash of an ID number and phone could be reversed by guessing.
    """
    return cipher.blind_index("identity_submission", json.dumps([name, id_card, phone], ensure_ascii=False))


def identity_columns(
    cipher: FieldCipher, *, name: str, id_card: str, phone: str, address: str | None
) -> dict[str, str | None]:
    """Patient columns for a submission: SM4 ciphertext (column name as associated data) and blind indexes."""
    return {
        "name_enc": cipher.encrypt("name", name),
        "id_card_enc": cipher.encrypt("id_card", id_card),
        "id_card_index": cipher.blind_index("id_card", id_card),
        "phone_enc": cipher.encrypt("phone", phone),
        "phone_index": cipher.blind_index("phone", phone),
        "address_enc": cipher.encrypt("address", address),
    }
