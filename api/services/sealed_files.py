"""Uploaded files kept at rest: what is accepted, and how the bytes are sealed and digested.

One place for every kind of upload (consultation images and voice clips, staff ID photos and licences). The declared
content type must be on the rule's list and the bytes must start the way that type does: the type is sent back with
every download, so a file that only claims to be an image must not reach a client as one. The bytes are sealed with
SM4-GCM under the PII key, bound by associated data to the row that holds them (bytes copied into another row do not
decrypt), and described by their SM3 digest, which also goes to the evidence ledger where the flow asks for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.responses import Response

from api.errors import Problem
from core.crypto.sm import sm3_hex, sm4_gcm_decrypt, sm4_gcm_encrypt

MIB = 1024 * 1024


def _riff(form: bytes) -> Callable[[bytes], bool]:
    return lambda data: data[:4] == b"RIFF" and data[8:12] == form


def _mpeg_audio(data: bytes) -> bool:
    # An ID3 tag, or straight into an MPEG audio frame (11 sync bits).
    return data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


def _adts(data: bytes) -> bool:
    return len(data) > 1 and data[0] == 0xFF and data[1] & 0xF6 == 0xF0


# content type → a check of the file's first bytes.
SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "image/jpeg": lambda data: data[:3] == b"\xff\xd8\xff",
    "image/png": lambda data: data[:8] == b"\x89PNG\r\n\x1a\n",
    "image/webp": _riff(b"WEBP"),
    "application/pdf": lambda data: data[:5] == b"%PDF-",
    "audio/mpeg": _mpeg_audio,
    "audio/aac": _adts,
    "audio/mp4": lambda data: data[4:8] == b"ftyp",
    "audio/amr": lambda data: data[:6] == b"#!AMR\n",
    "audio/ogg": lambda data: data[:4] == b"OggS",
    "audio/webm": lambda data: data[:4] == b"\x1a\x45\xdf\xa3",
    "audio/wav": _riff(b"WAVE"),
}


@dataclass(frozen=True)
class FileRule:
    """What one kind of upload may be: its zh-CN name (for messages), size limit and content types."""

    name: str
    limit: int
    types: frozenset[str]

    def allowed(self) -> list[str]:
        return sorted(self.types)


@dataclass(frozen=True)
class SealedFile:
    """A checked upload, sealed and ready to store; `sm3` and `size_bytes` describe the plaintext."""

    content_type: str
    size_bytes: int
    sm3: str
    data_enc: bytes


def normalise_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


async def read_upload(upload: UploadFile, rule: FileRule) -> tuple[str, bytes]:
    """(content type, bytes) of an upload; reads one byte past the limit, which is enough to know it is too large."""
    return normalise_type(upload.content_type), await upload.read(rule.limit + 1)


def check_file(rule: FileRule, content_type: str, data: bytes) -> None:
    """413 over the size limit, 415 for a type not accepted, 422 for an empty file or one that is not what it claims."""
    if len(data) > rule.limit:
        raise Problem(
            413, "MEDIA_TOO_LARGE", "文件过大", f"{rule.name}不能超过 {rule.limit // MIB} MB。", limit_bytes=rule.limit
        )
    if content_type not in rule.types:
        raise Problem(
            415,
            "MEDIA_TYPE_NOT_ALLOWED",
            "不支持的文件类型",
            f"{rule.name}仅支持 {'、'.join(rule.allowed())}。",
            allowed=rule.allowed(),
        )
    if not data:
        raise Problem(422, "MEDIA_EMPTY", "文件为空", f"请重新选择{rule.name}。")
    if not SIGNATURES[content_type](data):
        raise Problem(
            422, "MEDIA_CONTENT_MISMATCH", "文件内容与类型不符", f"文件内容不是 {content_type} 格式的{rule.name}。"
        )


def seal(key_hex: str, aad: str, data: bytes) -> bytes:
    """`aad` names the row (e.g. `consult_media.data_enc:<id>`): the blob opens only as that row's content."""
    return sm4_gcm_encrypt(bytes.fromhex(key_hex), data, aad.encode())


def unseal(key_hex: str, aad: str, blob: bytes) -> bytes:
    return sm4_gcm_decrypt(bytes.fromhex(key_hex), blob, aad.encode())


def seal_file(key_hex: str, aad: str, rule: FileRule, content_type: str, data: bytes) -> SealedFile:
    """Check the upload against `rule`, then seal it and take its digest."""
    check_file(rule, content_type, data)
    return SealedFile(content_type, len(data), sm3_hex(data), seal(key_hex, aad, data))


def file_response(data: bytes, content_type: str, sm3: str) -> Response:
    """A stored file as a download: shown inline, never cached, never sniffed as another type, with the SM3 digest
    recorded at upload in `X-Content-SM3`."""
    return Response(
        data,
        media_type=content_type,
        headers={
            "X-Content-SM3": sm3,
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": "inline",
        },
    )
