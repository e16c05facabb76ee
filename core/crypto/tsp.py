"""RFC 3161 trusted timestamps: build requests, read responses and verify tokens completely.

asn1crypto reads and writes the ASN.1. Signatures are checked with `cryptography` (RSA PKCS#1 v1.5, ECDSA) and with
core.crypto.sm2 (SM2 with SM3, GM/T 0033-style OIDs), so one verifier covers international and Chinese TSAs.
A token is accepted only when all of this holds: the CMS SignedData is signed over its signed attributes by the TSA
certificate named in its signing-certificate(-v2) attribute, the message-digest attribute covers the TSTInfo, the
TSA certificate is (or is issued by) a trust anchor, is valid at genTime and carries the critical timeStamping EKU,
and the TSTInfo's imprint (and nonce, when we sent one) are ours.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from asn1crypto import cms, core, keys, pem, tsp, x509
from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from core.crypto import sm2

QUERY_MEDIA_TYPE = "application/timestamp-query"
REPLY_MEDIA_TYPE = "application/timestamp-reply"

OID_SM3 = "1.2.156.10197.1.401"
OID_SM2_CURVE = "1.2.156.10197.1.301"
# GM/T 0010 SignerInfos name the bare SM2-1 signature scheme; GM/T 0033 and certificates use sm2sign-with-sm3.
OID_SM2_SIGN = "1.2.156.10197.1.301.1"
OID_SM2_WITH_SM3 = "1.2.156.10197.1.501"
OID_TST_INFO = "1.2.840.113549.1.9.16.1.4"
OID_TIME_STAMPING = "1.3.6.1.5.5.7.3.8"

# Digests a message imprint, a SignerInfo or an ESSCertIDv2 may use: name -> (OID, hash).
HASH_ALGORITHMS: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    "sha256": ("2.16.840.1.101.3.4.2.1", hashes.SHA256),
    "sha384": ("2.16.840.1.101.3.4.2.2", hashes.SHA384),
    "sha512": ("2.16.840.1.101.3.4.2.3", hashes.SHA512),
    "sm3": (OID_SM3, hashes.SM3),
}
HASH_BY_OID = {oid: name for name, (oid, _) in HASH_ALGORITHMS.items()}

# Signature OID -> (key type, hash). The hash is None where the OID names only the key type, as CMS SignerInfos
# often do (rsaEncryption, id-ecPublicKey); the SignerInfo's digestAlgorithm then decides.
SIGNATURE_ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "1.2.840.113549.1.1.1": ("rsa", None),
    "1.2.840.113549.1.1.11": ("rsa", "sha256"),
    "1.2.840.113549.1.1.12": ("rsa", "sha384"),
    "1.2.840.113549.1.1.13": ("rsa", "sha512"),
    "1.2.840.10045.2.1": ("ecdsa", None),
    "1.2.840.10045.4.3.2": ("ecdsa", "sha256"),
    "1.2.840.10045.4.3.3": ("ecdsa", "sha384"),
    "1.2.840.10045.4.3.4": ("ecdsa", "sha512"),
    OID_SM2_SIGN: ("sm2", "sm3"),
    OID_SM2_WITH_SM3: ("sm2", "sm3"),
}

_NONCE_BITS = 64


class TimestampError(Exception):
    """Base of every timestamp failure."""


class TimestampRejected(TimestampError):
    """The TSA answered without a token (PKIStatus rejection or waiting)."""

    def __init__(self, status: str, failures: tuple[str, ...], text: str) -> None:
        reason = ", ".join(failures) or "no failure info"
        super().__init__(f"TSA answered {status} ({reason})" + (f": {text}" if text else ""))
        self.status = status
        self.failures = failures
        self.text = text


class InvalidTimestamp(TimestampError):
    """The token is malformed, altered, or not signed the way RFC 3161 requires."""


class UntrustedTimestamp(InvalidTimestamp):
    """The token is intact but its TSA certificate does not lead to a trust anchor or may not stamp."""


class TimestampMismatch(InvalidTimestamp):
    """An authentic token, but for other data or another request (imprint or nonce differ)."""


class TimeStampResp(core.Sequence):
    # asn1crypto 1.5 declares the token mandatory, but RFC 3161 makes it optional and rejections leave it out.
    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


@dataclass(frozen=True)
class TimestampRequest:
    """A DER TimeStampReq and what its answer must echo."""

    der: bytes
    digest: bytes
    hash_algorithm: str
    nonce: int


class TimestampToken(BaseModel):
    """A verified timestamp token and the facts read from it; storable as JSON and re-verifiable later."""

    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    # Left out of repr: log lines about a token want its facts, not kilobytes of DER.
    der: bytes = Field(repr=False)
    gen_time: AwareDatetime
    serial: int
    tsa: str
    hash_algorithm: str
    digest: bytes

    def verify(
        self, data: bytes, anchors: Sequence[x509.Certificate], *, sm2_signer_id: bytes = sm2.DEFAULT_SIGNER_ID
    ) -> None:
        """Check the token again against the original data; also catches stored fields edited apart from it."""
        again = verify_token(
            self.der,
            data_digest=digest(self.hash_algorithm, data),
            hash_algorithm=self.hash_algorithm,
            anchors=anchors,
            sm2_signer_id=sm2_signer_id,
        )
        if again != self:
            raise TimestampMismatch("the stored timestamp fields differ from what its token says")


def digest(hash_algorithm: str, data: bytes) -> bytes:
    if hash_algorithm not in HASH_ALGORITHMS:
        raise ValueError(f"unsupported hash algorithm {hash_algorithm!r}; known: {', '.join(HASH_ALGORITHMS)}")
    hasher = hashes.Hash(HASH_ALGORITHMS[hash_algorithm][1]())
    hasher.update(data)
    return hasher.finalize()


def load_certificates(pem_data: bytes | str) -> tuple[x509.Certificate, ...]:
    """Every certificate in a PEM bundle, e.g. the configured trust anchors."""
    data = pem_data.encode() if isinstance(pem_data, str) else pem_data
    found = tuple(
        x509.Certificate.load(der, strict=True)
        for kind, _, der in pem.unarmor(data, multiple=True)
        if kind == "CERTIFICATE"
    )
    if not found:
        raise ValueError("no CERTIFICATE block in the PEM data")
    return found


def build_request(data_digest: bytes, hash_algorithm: str) -> TimestampRequest:
    """A TimeStampReq for `data_digest` with a fresh random 64-bit nonce, asking for the TSA certificate."""
    expected = HASH_ALGORITHMS.get(hash_algorithm)
    if expected is None:
        raise ValueError(f"unsupported hash algorithm {hash_algorithm!r}; known: {', '.join(HASH_ALGORITHMS)}")
    if len(data_digest) != expected[1].digest_size:
        raise ValueError(f"a {hash_algorithm} digest has {expected[1].digest_size} bytes, not {len(data_digest)}")
    # The top bit forced on keeps every nonce a full 64 bits, so none is trivially small or guessable.
    nonce = secrets.randbits(_NONCE_BITS - 1) | (1 << (_NONCE_BITS - 1))
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": expected[0]}, "hashed_message": data_digest},
            "nonce": nonce,
            # The token then carries the TSA certificate, so it verifies on its own against a root years later.
            "cert_req": True,
        }
    )
    return TimestampRequest(der=request.dump(), digest=data_digest, hash_algorithm=hash_algorithm, nonce=nonce)


def parse_response(der: bytes) -> bytes:
    """The DER token from a TimeStampResp; raises TimestampRejected when the TSA did not grant one."""
    try:
        response = TimeStampResp.load(der, strict=True)
        status_info = response["status"]
        status = str(status_info["status"].native)
        failures = tuple(sorted(str(name) for name in status_info["fail_info"].native or ()))
        text = "; ".join(str(line) for line in status_info["status_string"].native or ())
        token = response["time_stamp_token"]
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidTimestamp(f"unreadable TimeStampResp: {exc}") from exc
    if status not in ("granted", "granted_with_mods"):
        raise TimestampRejected(status, failures, text)
    if isinstance(token, core.Void):
        raise InvalidTimestamp(f"TSA answered {status} but sent no token")
    return token.dump()


def verify_token(
    token: bytes,
    *,
    data_digest: bytes,
    hash_algorithm: str,
    anchors: Sequence[x509.Certificate],
    nonce: int | None = None,
    sm2_signer_id: bytes = sm2.DEFAULT_SIGNER_ID,
) -> TimestampToken:
    """Verify a DER TimeStampToken for `data_digest` (and `nonce` when we sent one); return what it attests."""
    try:
        return _verify(token, data_digest, hash_algorithm, anchors, nonce, sm2_signer_id)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        # asn1crypto parses lazily and reports bad encodings this way wherever a field is first read.
        raise InvalidTimestamp(f"unreadable timestamp token: {exc}") from exc


def _verify(
    token: bytes,
    data_digest: bytes,
    hash_algorithm: str,
    anchors: Sequence[x509.Certificate],
    nonce: int | None,
    sm2_signer_id: bytes,
) -> TimestampToken:
    content_info = cms.ContentInfo.load(token, strict=True)
    if content_info["content_type"].dotted != "1.2.840.113549.1.7.2":
        raise InvalidTimestamp("a timestamp token must be CMS SignedData")
    signed_data = content_info["content"]
    # RFC 5652 5.1: version 3 whenever the content is not id-data; asn1crypto reads v1 as PKCS#7 instead.
    if signed_data["version"].native != "v3":
        raise InvalidTimestamp("a timestamp token's SignedData must be version 3")
    encap = signed_data["encap_content_info"]
    if encap["content_type"].dotted != OID_TST_INFO or isinstance(encap["content"], core.Void):
        raise InvalidTimestamp("the SignedData does not encapsulate a TSTInfo")
    tst_der = encap["content"].contents
    tst_info = tsp.TSTInfo.load(tst_der, strict=True)
    # RFC 3161 2.4.2: the token carries the TSA's signature and no other.
    if len(signed_data["signer_infos"]) != 1:
        raise InvalidTimestamp("a timestamp token must have exactly one SignerInfo")
    signer = signed_data["signer_infos"][0]
    signer_hash = _hash_name(signer["digest_algorithm"]["algorithm"].dotted, "SignerInfo digest")

    attributes = _signed_attributes(signer)
    if attributes.get("1.2.840.113549.1.9.3") != cms.ContentType(OID_TST_INFO).dump():
        raise InvalidTimestamp("the content-type attribute is not id-ct-TSTInfo")
    message_digest = attributes.get("1.2.840.113549.1.9.4")
    if message_digest is None or core.OctetString.load(message_digest).native != digest(signer_hash, tst_der):
        raise InvalidTimestamp("the message-digest attribute does not match the TSTInfo")

    candidates = [choice.chosen for choice in signed_data["certificates"] if choice.name == "certificate"]
    tsa_cert = _signer_certificate(signer["sid"], [*candidates, *anchors])
    _check_signing_certificate(attributes, tsa_cert)

    signed_attrs_der = signer["signed_attrs"].dump()
    # The signature covers the attributes as a universal SET OF, not with the [0] tag they are stored under.
    _verify_signature(
        tsa_cert.public_key,
        signer["signature_algorithm"]["algorithm"].dotted,
        signer_hash,
        signer["signature"].native,
        b"\x31" + signed_attrs_der[1:],
        sm2_signer_id,
    )

    gen_time = tst_info["gen_time"].native
    if not isinstance(gen_time, datetime) or gen_time.tzinfo is None:
        raise InvalidTimestamp("genTime is not a UTC GeneralizedTime")
    _check_trusted(tsa_cert, anchors, gen_time)
    _check_tsa_name(tst_info, tsa_cert)

    if tst_info["version"].native != "v1":
        raise InvalidTimestamp("unknown TSTInfo version")
    imprint = tst_info["message_imprint"]
    imprint_hash = _hash_name(imprint["hash_algorithm"]["algorithm"].dotted, "imprint")
    if imprint_hash != hash_algorithm or imprint["hashed_message"].native != data_digest:
        raise TimestampMismatch("the token stamps other data")
    if nonce is not None and tst_info["nonce"].native != nonce:
        raise TimestampMismatch("the token answers another request (nonce differs)")

    return TimestampToken(
        der=token,
        gen_time=gen_time,
        serial=tst_info["serial_number"].native,
        tsa=cx509.load_der_x509_certificate(tsa_cert.dump()).subject.rfc4514_string(),
        hash_algorithm=hash_algorithm,
        digest=data_digest,
    )


def _hash_name(oid: str, what: str) -> str:
    name = HASH_BY_OID.get(oid)
    if name is None:
        raise InvalidTimestamp(f"unsupported {what} hash algorithm {oid}")
    return name


def _signed_attributes(signer: cms.SignerInfo) -> dict[str, bytes]:
    """Signed attributes by OID -> DER of their single value; RFC 5652 forbids repeating one or giving it two."""
    if isinstance(signer["signed_attrs"], core.Void):
        raise InvalidTimestamp("the SignerInfo has no signed attributes")
    found: dict[str, bytes] = {}
    for attribute in signer["signed_attrs"]:
        oid = attribute["type"].dotted
        values = attribute["values"]
        if oid in found or len(values) != 1:
            raise InvalidTimestamp(f"signed attribute {oid} must appear once with one value")
        found[oid] = values[0].dump()
    return found


def _signer_certificate(sid: cms.SignerIdentifier, certificates: Sequence[x509.Certificate]) -> x509.Certificate:
    for cert in certificates:
        if sid.name == "issuer_and_serial_number":
            if cert.issuer == sid.chosen["issuer"] and cert.serial_number == sid.chosen["serial_number"].native:
                return cert
        elif cert.key_identifier == sid.chosen.native:
            return cert
    raise UntrustedTimestamp("the TSA certificate is neither in the token nor a trust anchor")


def _check_signing_certificate(attributes: dict[str, bytes], cert: x509.Certificate) -> None:
    """The ESS signing-certificate(-v2) attribute binds the signature to this very certificate (RFC 5816)."""
    v2 = attributes.get("1.2.840.113549.1.9.16.2.47")
    v1 = attributes.get("1.2.840.113549.1.9.16.2.12")
    if v2 is not None:
        first_v2 = tsp.SigningCertificateV2.load(v2)["certs"][0]
        cert_hash_name = _hash_name(first_v2["hash_algorithm"]["algorithm"].dotted, "ESSCertIDv2")
        expected = digest(cert_hash_name, cert.dump())
        cert_hash, issuer_serial = first_v2["cert_hash"].native, first_v2["issuer_serial"]
    elif v1 is not None:
        # ESSCertID (v1) is fixed to SHA-1; used here only to recognise a certificate, not to sign anything.
        first_v1 = tsp.SigningCertificate.load(v1)["certs"][0]
        sha1 = hashes.Hash(hashes.SHA1())
        sha1.update(cert.dump())
        expected = sha1.finalize()
        cert_hash, issuer_serial = first_v1["cert_hash"].native, first_v1["issuer_serial"]
    else:
        raise InvalidTimestamp("no signing-certificate or signing-certificate-v2 attribute")
    if cert_hash != expected:
        raise InvalidTimestamp("the signing-certificate attribute names another certificate")
    if not isinstance(issuer_serial, core.Void):
        names = [name.chosen for name in issuer_serial["issuer"] if name.name == "directory_name"]
        if cert.serial_number != issuer_serial["serial_number"].native or cert.issuer not in names:
            raise InvalidTimestamp("the signing-certificate issuer/serial names another certificate")


def _verify_signature(
    public_key: keys.PublicKeyInfo,
    algorithm_oid: str,
    hash_name: str | None,
    signature: bytes,
    message: bytes,
    sm2_signer_id: bytes,
) -> None:
    """Check `signature` over `message`; `hash_name` is the digest a key-only algorithm OID leaves open."""
    key_type, fixed_hash = SIGNATURE_ALGORITHMS.get(algorithm_oid, (None, None))
    if key_type is None:
        raise InvalidTimestamp(f"unsupported signature algorithm {algorithm_oid}")
    if fixed_hash is not None and hash_name is not None and fixed_hash != hash_name:
        raise InvalidTimestamp(f"signature algorithm {algorithm_oid} does not go with digest {hash_name}")
    chosen_hash = fixed_hash or hash_name
    if chosen_hash is None:
        raise InvalidTimestamp(f"signature algorithm {algorithm_oid} names no digest")
    if _key_type(public_key) != key_type:
        raise InvalidTimestamp(f"a {_key_type(public_key)} key cannot check a {key_type} signature")
    try:
        if key_type == "sm2":
            sm2.Sm2PublicKey.from_bytes(public_key["public_key"].native).verify(signature, message, sm2_signer_id)
            return
        key = load_der_public_key(public_key.dump())
        hash_algorithm = HASH_ALGORITHMS[chosen_hash][1]()
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(hash_algorithm))
    except (InvalidSignature, sm2.InvalidSignature) as exc:
        raise InvalidTimestamp("the signature does not verify") from exc


def _key_type(public_key: keys.PublicKeyInfo) -> str:
    algorithm = public_key["algorithm"]["algorithm"].dotted
    if algorithm == "1.2.840.113549.1.1.1":
        return "rsa"
    if algorithm == "1.2.840.10045.2.1":
        curve = public_key["algorithm"]["parameters"]
        return "sm2" if curve.name == "named" and curve.chosen.dotted == OID_SM2_CURVE else "ecdsa"
    return algorithm


def _check_trusted(cert: x509.Certificate, anchors: Sequence[x509.Certificate], at: datetime) -> None:
    _check_timestamping_usage(cert)
    _check_validity(cert, at)
    for anchor in anchors:
        if anchor.dump() == cert.dump():
            return
        if anchor.subject != cert.issuer or not _may_issue(anchor):
            continue
        try:
            # GM/T 0015: certificates are signed with the default SM2 signer ID, whatever the TSA uses for tokens.
            _verify_signature(
                anchor.public_key,
                cert["signature_algorithm"]["algorithm"].dotted,
                None,
                cert["signature_value"].native,
                cert["tbs_certificate"].dump(),
                sm2.DEFAULT_SIGNER_ID,
            )
        except InvalidTimestamp:
            continue
        _check_validity(anchor, at)
        return
    raise UntrustedTimestamp(f"the TSA certificate {cert.subject.human_friendly!r} is not from a trust anchor")


def _check_timestamping_usage(cert: x509.Certificate) -> None:
    # RFC 3161 2.3: exactly one EKU, id-kp-timeStamping, and the extension MUST be critical.
    usage = cert.extended_key_usage_value
    purposes = [purpose.dotted for purpose in usage] if usage is not None else []
    if purposes != [OID_TIME_STAMPING] or "extended_key_usage" not in cert.critical_extensions:
        raise UntrustedTimestamp("the TSA certificate lacks a critical extendedKeyUsage of only timeStamping")
    key_usage = cert.key_usage_value
    if key_usage is not None and not key_usage.native & {"digital_signature", "non_repudiation"}:
        raise UntrustedTimestamp("the TSA certificate's keyUsage does not allow signing")


def _check_validity(cert: x509.Certificate, at: datetime) -> None:
    validity = cert["tbs_certificate"]["validity"]
    if not validity["not_before"].native <= at <= validity["not_after"].native:
        raise UntrustedTimestamp(f"{cert.subject.human_friendly!r} was not valid at genTime {at.isoformat()}")


def _may_issue(anchor: x509.Certificate) -> bool:
    key_usage = anchor.key_usage_value
    return anchor.ca and (key_usage is None or "key_cert_sign" in key_usage.native)


def _check_tsa_name(tst_info: tsp.TSTInfo, cert: x509.Certificate) -> None:
    # RFC 3161 2.4.2: when present, the tsa field must name the subject of the certificate that verifies the token.
    name = tst_info["tsa"]
    if isinstance(name, core.Void):
        return
    if name.name == "directory_name" and name.chosen == cert.subject:
        return
    alternatives = cert.subject_alt_name_value
    if alternatives is not None and any(alt.dump() == name.dump() for alt in alternatives):
        return
    raise UntrustedTimestamp("the TSTInfo's tsa field does not name the TSA certificate")
