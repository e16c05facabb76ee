"""Images and voice clips sent in a consultation: what is accepted, and how the bytes are sealed at rest.

The declared content type must be on the list and the bytes must start the way that type does: the type is sent back
with every download, so a file that only claims to be an image must not reach a client as one.
"""

from __future__ import annotations

from collections.abc import Callable

from api.errors import Problem
from core.crypto.sm import sm4_gcm_decrypt, sm4_gcm_encrypt
from models.consult import MessageKind

MIB = 1024 * 1024
SIZE_LIMITS: dict[MessageKind, int] = {MessageKind.IMAGE: 5 * MIB, MessageKind.VOICE: 2 * MIB}
# The largest upload request: the biggest file plus room for the multipart framing and the small form fields.
MAX_UPLOAD_BYTES = max(SIZE_LIMITS.values()) + 64 * 1024


def _riff(form: bytes) -> Callable[[bytes], bool]:
    return lambda data: data[:4] == b"RIFF" and data[8:12] == form


def _mpeg_audio(data: bytes) -> bool:
    # An ID3 tag, or straight into an MPEG audio frame (11 sync bits).
    return data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


def _adts(data: bytes) -> bool:
    return len(data) > 1 and data[0] == 0xFF and data[1] & 0xF6 == 0xF0


# content type → a check of the file's first bytes.
_SIGNATURES: dict[MessageKind, dict[str, Callable[[bytes], bool]]] = {
    MessageKind.IMAGE: {
        "image/jpeg": lambda data: data[:3] == b"\xff\xd8\xff",
        "image/png": lambda data: data[:8] == b"\x89PNG\r\n\x1a\n",
        "image/webp": _riff(b"WEBP"),
    },
    MessageKind.VOICE: {
        "audio/mpeg": _mpeg_audio,
        "audio/aac": _adts,
        "audio/mp4": lambda data: data[4:8] == b"ftyp",
        "audio/amr": lambda data: data[:6] == b"#!AMR\n",
        "audio/ogg": lambda data: data[:4] == b"OggS",
        "audio/webm": lambda data: data[:4] == b"\x1a\x45\xdf\xa3",
        "audio/wav": _riff(b"WAVE"),
    },
}

_KIND_NAMES = {MessageKind.IMAGE: "图片", MessageKind.VOICE: "语音"}


def allowed_types(kind: MessageKind) -> list[str]:
    return sorted(_SIGNATURES[kind])


def normalise_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_media(kind: MessageKind, content_type: str, data: bytes) -> None:
    """413 over the size limit, 415 for a type not accepted, 422 for an empty file or one that is not what it claims."""
    name = _KIND_NAMES[kind]
    limit = SIZE_LIMITS[kind]
    if len(data) > limit:
        raise Problem(
            413,
            "MEDIA_TOO_LARGE",
            "文件过大",
            f"{name}不能超过 {limit // MIB} MB。",
            limit_bytes=limit,
        )
    signatures = _SIGNATURES[kind]
    if content_type not in signatures:
        raise Problem(
            415,
            "MEDIA_TYPE_NOT_ALLOWED",
            "不支持的文件类型",
            f"{name}仅支持 {'、'.join(allowed_types(kind))}。",
            allowed=allowed_types(kind),
        )
    if not data:
        raise Problem(422, "MEDIA_EMPTY", "文件为空", f"请重新选择{name}。")
    if not signatures[content_type](data):
        raise Problem(
            422, "MEDIA_CONTENT_MISMATCH", "文件内容与类型不符", f"文件内容不是 {content_type} 格式的{name}。"
        )


def _aad(media_id: str) -> bytes:
    # Bound to its row: bytes copied under another media id do not decrypt.
    return f"consult_media.data_enc:{media_id}".encode()


def seal(key_hex: str, media_id: str, data: bytes) -> bytes:
    return sm4_gcm_encrypt(bytes.fromhex(key_hex), data, _aad(media_id))


def unseal(key_hex: str, media_id: str, blob: bytes) -> bytes:
    return sm4_gcm_decrypt(bytes.fromhex(key_hex), blob, _aad(media_id))
