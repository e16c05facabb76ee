"""Images and voice clips sent in a consultation: what is accepted, and how the bytes are sealed at rest.

The checks, the sealing and the digest are those of every upload (api/services/sealed_files.py); this module says
which files a consultation takes and binds each to its `consult_media` row.
"""

from __future__ import annotations

from api.services import sealed_files
from api.services.sealed_files import MIB, FileRule, normalise_type
from models.consult import MessageKind

__all__ = ["MAX_UPLOAD_BYTES", "SIZE_LIMITS", "allowed_types", "check_media", "normalise_type", "seal", "unseal"]

RULES: dict[MessageKind, FileRule] = {
    MessageKind.IMAGE: FileRule("图片", 5 * MIB, frozenset({"image/jpeg", "image/png", "image/webp"})),
    MessageKind.VOICE: FileRule(
        "语音",
        2 * MIB,
        frozenset({"audio/mpeg", "audio/aac", "audio/mp4", "audio/amr", "audio/ogg", "audio/webm", "audio/wav"}),
    ),
}
SIZE_LIMITS: dict[MessageKind, int] = {kind: rule.limit for kind, rule in RULES.items()}
# The largest upload request: the biggest file plus room for the multipart framing and the small form fields.
MAX_UPLOAD_BYTES = max(SIZE_LIMITS.values()) + 64 * 1024


def allowed_types(kind: MessageKind) -> list[str]:
    return RULES[kind].allowed()


def check_media(kind: MessageKind, content_type: str, data: bytes) -> None:
    """413 over the size limit, 415 for a type not accepted, 422 for an empty file or one that is not what it claims."""
    sealed_files.check_file(RULES[kind], content_type, data)


def _aad(media_id: str) -> str:
    # Bound to its row: bytes copied under another media id do not decrypt.
    return f"consult_media.data_enc:{media_id}"


def seal(key_hex: str, media_id: str, data: bytes) -> bytes:
    return sealed_files.seal(key_hex, _aad(media_id), data)


def unseal(key_hex: str, media_id: str, blob: bytes) -> bytes:
    return sealed_files.unseal(key_hex, _aad(media_id), blob)
