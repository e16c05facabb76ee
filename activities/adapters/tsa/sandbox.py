"""Sandbox TSA: a local RFC 3161 authority for dev and tests that issues real, verifiable tokens.

It makes its own self-signed root and a TSA certificate (critical EKU timeStamping) once, with SM2 keys signing with
SM3 (the Chinese-TSA case) or ECDSA P-256 with SHA-256, and keeps them in `key_dir` when given one, so tokens stamped
in one run still verify in the next. `cryptography` cannot sign with SM2, so certificates are put together with
asn1crypto and signed through core.crypto.sm2 (or `cryptography` for ECDSA) by one code path.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from asn1crypto import cms, keys, pem, x509
from asn1crypto import tsp as asn1_tsp
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from activities.adapters.tsa import rejection_error
from core.crypto import sm2
from core.crypto.tsp import (
    HASH_ALGORITHMS,
    HASH_BY_OID,
    OID_SM2_CURVE,
    OID_SM2_WITH_SM3,
    QUERY_MEDIA_TYPE,
    REPLY_MEDIA_TYPE,
    TimestampRejected,
    TimeStampResp,
    TimestampToken,
    build_request,
    digest,
    load_certificates,
    parse_response,
    verify_token,
)
from core.settings import Settings

Algorithm = Literal["sm2", "ecdsa"]

# Under the ASN.1 example arc (2.999), so no real TSA policy can be mistaken for the sandbox's.
POLICY = "2.999.3161.1"
_ROOT_YEARS = 10
_TSA_YEARS = 5
# Certificates start a little in the past so a peer whose clock lags still accepts them at once.
_BACKDATE = timedelta(minutes=5)


class _Sm2Key:
    signature_oid = OID_SM2_WITH_SM3
    hash_algorithm = "sm3"

    def __init__(self, key: sm2.Sm2PrivateKey) -> None:
        self.key = key

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)

    def public_key_info(self) -> keys.PublicKeyInfo:
        curve = keys.ECDomainParameters(name="named", value=OID_SM2_CURVE)
        return keys.PublicKeyInfo(
            {"algorithm": {"algorithm": "ec", "parameters": curve}, "public_key": self.key.public_key().to_bytes()}
        )

    def to_pem(self) -> bytes:
        return self.key.to_pem()


class _EcKey:
    signature_oid = "1.2.840.10045.4.3.2"
    hash_algorithm = "sha256"

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self.key = key

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message, ec.ECDSA(hashes.SHA256()))

    def public_key_info(self) -> keys.PublicKeyInfo:
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return keys.PublicKeyInfo.load(der)

    def to_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


_Key = _Sm2Key | _EcKey


def _new_key(algorithm: Algorithm) -> _Key:
    if algorithm == "sm2":
        return _Sm2Key(sm2.Sm2PrivateKey.generate())
    return _EcKey(ec.generate_private_key(ec.SECP256R1()))


def _load_key(algorithm: Algorithm, data: bytes) -> _Key:
    if algorithm == "sm2":
        return _Sm2Key(sm2.Sm2PrivateKey.from_pem(data))
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the stored sandbox TSA key is not an EC key")
    return _EcKey(key)


def _key_id(public_key: keys.PublicKeyInfo) -> bytes:
    # RFC 7093 method 1: leftmost 160 bits of SHA-256 over the subject public key.
    return digest("sha256", public_key["public_key"].dump())[:20]


def _certificate(
    *,
    subject: x509.Name,
    public_key: keys.PublicKeyInfo,
    issuer: x509.Name,
    issuer_key: _Key,
    issuer_key_id: bytes,
    years: int,
    extensions: list[dict[str, Any]],
) -> x509.Certificate:
    now = datetime.now(UTC).replace(microsecond=0)
    tbs = x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": cx509.random_serial_number(),
            "signature": {"algorithm": issuer_key.signature_oid},
            "issuer": issuer,
            "validity": {
                # RFC 5280 wants UTCTime for dates before 2050; the sandbox never issues past that.
                "not_before": x509.Time(name="utc_time", value=now - _BACKDATE),
                "not_after": x509.Time(name="utc_time", value=now + timedelta(days=365 * years)),
            },
            "subject": subject,
            "subject_public_key_info": public_key,
            "extensions": [
                {"extn_id": "key_identifier", "critical": False, "extn_value": _key_id(public_key)},
                {
                    "extn_id": "authority_key_identifier",
                    "critical": False,
                    "extn_value": {"key_identifier": issuer_key_id},
                },
                *extensions,
            ],
        }
    )
    return x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": {"algorithm": issuer_key.signature_oid},
            "signature_value": issuer_key.sign(tbs.dump()),
        }
    )


def _new_authority(algorithm: Algorithm) -> tuple[_Key, x509.Certificate, x509.Certificate]:
    """A fresh TSA key, its certificate, and the self-signed root that issued it (whose key is then dropped)."""
    root_key, tsa_key = _new_key(algorithm), _new_key(algorithm)
    root_public, tsa_public = root_key.public_key_info(), tsa_key.public_key_info()
    root_name = x509.Name.build(
        {"country_name": "CN", "organization_name": "Qihuang Sandbox", "common_name": f"Sandbox TSA Root {algorithm}"}
    )
    tsa_name = x509.Name.build(
        {"country_name": "CN", "organization_name": "Qihuang Sandbox", "common_name": f"Sandbox TSA {algorithm}"}
    )
    root = _certificate(
        subject=root_name,
        public_key=root_public,
        issuer=root_name,
        issuer_key=root_key,
        issuer_key_id=_key_id(root_public),
        years=_ROOT_YEARS,
        extensions=[
            {"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": True, "path_len_constraint": 0}},
            {"extn_id": "key_usage", "critical": True, "extn_value": {"key_cert_sign", "crl_sign"}},
        ],
    )
    tsa_cert = _certificate(
        subject=tsa_name,
        public_key=tsa_public,
        issuer=root_name,
        issuer_key=root_key,
        issuer_key_id=_key_id(root_public),
        years=_TSA_YEARS,
        extensions=[
            {"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": False}},
            {"extn_id": "key_usage", "critical": True, "extn_value": {"digital_signature", "non_repudiation"}},
            # RFC 3161 2.3: the only purpose, and critical.
            {"extn_id": "extended_key_usage", "critical": True, "extn_value": ["time_stamping"]},
        ],
    )
    return tsa_key, tsa_cert, root


def _load_or_create(algorithm: Algorithm, key_dir: Path | None) -> tuple[_Key, x509.Certificate, x509.Certificate]:
    if key_dir is None:
        return _new_authority(algorithm)
    key_path, cert_path, root_path = (key_dir / f"tsa-{algorithm}{suffix}" for suffix in (".key", ".pem", "-root.pem"))
    if key_path.exists() and cert_path.exists() and root_path.exists():
        tsa_cert, root = load_certificates(cert_path.read_bytes())[0], load_certificates(root_path.read_bytes())[0]
        if datetime.now(UTC) < tsa_cert["tbs_certificate"]["validity"]["not_after"].native:
            return _load_key(algorithm, key_path.read_bytes()), tsa_cert, root
    key, tsa_cert, root = _new_authority(algorithm)
    key_dir.mkdir(parents=True, exist_ok=True)
    # The key file is created owner-only before any byte is written to it.
    with os.fdopen(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as key_file:
        key_file.write(key.to_pem())
    cert_path.write_bytes(pem.armor("CERTIFICATE", tsa_cert.dump()))
    root_path.write_bytes(pem.armor("CERTIFICATE", root.dump()))
    return key, tsa_cert, root


def _rejection(failure: str, text: str) -> bytes:
    status = {"status": "rejection", "status_string": [text], "fail_info": {failure}}
    return TimeStampResp({"status": status}).dump()


class TimestampIssuer:
    """Issues RFC 3161 tokens: a DER TimeStampReq in, a DER TimeStampResp out."""

    def __init__(self, algorithm: Algorithm = "sm2", key_dir: Path | None = None) -> None:
        self.algorithm: Algorithm = algorithm
        self._key, self.certificate, self.root = _load_or_create(algorithm, key_dir)
        self._last_serial = 0
        self._serial_lock = threading.Lock()
        # When set, every request is answered `rejection` with this PKIFailureInfo, e.g. "system_failure".
        self.refusal: str | None = None

    @property
    def trust_anchors(self) -> tuple[x509.Certificate, ...]:
        return (self.root,)

    def root_pem(self) -> bytes:
        return pem.armor("CERTIFICATE", self.root.dump())

    def respond(self, request_der: bytes) -> bytes:
        if self.refusal is not None:
            return _rejection(self.refusal, "the sandbox TSA was told to refuse")
        try:
            request = asn1_tsp.TimeStampReq.load(request_der, strict=True)
            version = request["version"].native
            hash_name = HASH_BY_OID.get(request["message_imprint"]["hash_algorithm"]["algorithm"].dotted)
            hashed = request["message_imprint"]["hashed_message"].native
            policy = request["req_policy"].native
            nonce = request["nonce"].native
            cert_req = bool(request["cert_req"].native)
            has_extensions = bool(request["extensions"].native)
        except (ValueError, TypeError, KeyError) as exc:
            return _rejection("bad_data_format", f"unreadable TimeStampReq: {exc}")
        if version != "v1":
            return _rejection("bad_request", "only TimeStampReq v1 is known")
        if hash_name is None:
            return _rejection("bad_alg", f"imprint hash must be one of {', '.join(HASH_ALGORITHMS)}")
        if len(hashed) != HASH_ALGORITHMS[hash_name][1].digest_size:
            return _rejection("bad_data_format", f"the imprint is not a {hash_name} digest")
        if policy is not None and policy != POLICY:
            return _rejection("unaccepted_policy", f"the sandbox TSA only stamps under {POLICY}")
        if has_extensions:
            return _rejection("unaccepted_extensions", "the sandbox TSA supports no request extensions")
        token = self._token(hash_name, hashed, nonce, cert_req)
        return TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump()

    def _next_serial(self) -> int:
        # Nanoseconds since the epoch, pushed past the previous serial: increasing within a run and, clocks
        # permitting, across restarts with kept keys, without any state written to disk.
        with self._serial_lock:
            self._last_serial = max(self._last_serial + 1, time.time_ns())
            return self._last_serial

    def _token(self, hash_name: str, hashed: bytes, nonce: int | None, cert_req: bool) -> cms.ContentInfo:
        now = datetime.now(UTC)
        tst_fields: dict[str, Any] = {
            "version": "v1",
            "policy": POLICY,
            "message_imprint": {
                "hash_algorithm": {"algorithm": HASH_ALGORITHMS[hash_name][0]},
                "hashed_message": hashed,
            },
            "serial_number": self._next_serial(),
            "gen_time": now.replace(microsecond=now.microsecond // 1000 * 1000),
            "accuracy": {"millis": 1},
            "tsa": x509.GeneralName(name="directory_name", value=self.certificate.subject),
        }
        if nonce is not None:
            tst_fields["nonce"] = nonce
        tst_info = asn1_tsp.TSTInfo(tst_fields)
        signer_hash = self._key.hash_algorithm
        signer_hash_oid = HASH_ALGORITHMS[signer_hash][0]
        cert_id = {
            "hash_algorithm": {"algorithm": signer_hash_oid},
            "cert_hash": digest(signer_hash, self.certificate.dump()),
            "issuer_serial": {
                "issuer": [x509.GeneralName(name="directory_name", value=self.certificate.issuer)],
                "serial_number": self.certificate.serial_number,
            },
        }
        signed_attrs = cms.CMSAttributes(
            [
                {"type": "content_type", "values": ["tst_info"]},
                {"type": "message_digest", "values": [digest(signer_hash, tst_info.dump())]},
                {"type": "signing_certificate_v2", "values": [{"certs": [cert_id]}]},
            ]
        )
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    name="issuer_and_serial_number",
                    value={"issuer": self.certificate.issuer, "serial_number": self.certificate.serial_number},
                ),
                "digest_algorithm": {"algorithm": signer_hash_oid},
                "signed_attrs": signed_attrs,
                "signature_algorithm": {"algorithm": self._key.signature_oid},
                # Signed as the DER SET OF that asn1crypto sorted, which is what verifiers rebuild from the [0] field.
                "signature": self._key.sign(signed_attrs.dump()),
            }
        )
        signed_data: dict[str, Any] = {
            "version": "v3",
            "digest_algorithms": [{"algorithm": signer_hash_oid}],
            "encap_content_info": {"content_type": "tst_info", "content": tst_info},
            "signer_infos": [signer_info],
        }
        if cert_req:
            signed_data["certificates"] = [self.certificate]
        return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed_data)})


@functools.cache
def _issuer(key_dir: str) -> TimestampIssuer:
    """One issuer per key directory in a process, so the worker's and the API's adapters in one process agree even
    when the keys live only in memory (an empty `key_dir`)."""
    return TimestampIssuer(key_dir=Path(key_dir) if key_dir else None)


class SandboxTsa:
    """The sandbox issuer as a TimestampAuthority: in-process, through the same request, response and verify path
    the real RFC 3161 client takes. `sessions` and `settings` are taken only for the registry's uniform constructor."""

    name = "sandbox"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        issuer: TimestampIssuer | None = None,
    ) -> None:
        self.issuer = issuer or _issuer(settings.tsa_sandbox_key_dir)
        self.hash_algorithm = "sm3" if self.issuer.algorithm == "sm2" else "sha256"
        self.trust_anchors = self.issuer.trust_anchors

    async def timestamp(self, *, data_digest: bytes, hash_algorithm: str) -> TimestampToken:
        request = build_request(data_digest, hash_algorithm)
        try:
            token = parse_response(self.issuer.respond(request.der))
        except TimestampRejected as rejected:
            raise rejection_error(self.name, rejected) from rejected
        return verify_token(
            token,
            data_digest=data_digest,
            hash_algorithm=hash_algorithm,
            anchors=self.trust_anchors,
            nonce=request.nonce,
        )


def _authorized(request: Request, credentials: tuple[str, str]) -> bool:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    # Both compared in constant time, so a timing probe learns neither the name nor the password.
    return secrets.compare_digest(user.encode(), credentials[0].encode()) & secrets.compare_digest(
        password.encode(), credentials[1].encode()
    )


def sandbox_tsa_app(issuer: TimestampIssuer, *, credentials: tuple[str, str] | None = None) -> Starlette:
    """The issuer over HTTP as RFC 3161 section 3.4 describes it, optionally behind HTTP basic auth."""

    async def stamp(request: Request) -> Response:
        if credentials is not None and not _authorized(request, credentials):
            return Response(status_code=401, headers={"WWW-Authenticate": 'Basic realm="sandbox-tsa"'})
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != QUERY_MEDIA_TYPE:
            return Response(f"send {QUERY_MEDIA_TYPE}", status_code=415)
        return Response(issuer.respond(await request.body()), media_type=REPLY_MEDIA_TYPE)

    return Starlette(routes=[Route("/", stamp, methods=["POST"])])
