"""RFC 3161 tokens: our issuer and verifier with SM2 and ECDSA, the failure cases, and interop with OpenSSL's TSA."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import tsp as asn1_tsp

from activities.adapters.tsa.sandbox import TimestampIssuer
from core.crypto.tsp import (
    InvalidTimestamp,
    TimestampMismatch,
    TimestampRejected,
    TimestampRequest,
    TimestampToken,
    UntrustedTimestamp,
    build_request,
    digest,
    load_certificates,
    parse_response,
    verify_token,
)

DATA = "处方 RX-0001: 黄芪 30g, 当归 10g".encode()
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@pytest.fixture(scope="module")
def sm2_issuer() -> TimestampIssuer:
    return TimestampIssuer("sm2")


@pytest.fixture(scope="module")
def ecdsa_issuer() -> TimestampIssuer:
    return TimestampIssuer("ecdsa")


@pytest.fixture(params=["sm2", "ecdsa"])
def issuer(
    request: pytest.FixtureRequest, sm2_issuer: TimestampIssuer, ecdsa_issuer: TimestampIssuer
) -> TimestampIssuer:
    return sm2_issuer if request.param == "sm2" else ecdsa_issuer


def stamp(issuer: TimestampIssuer, data: bytes = DATA, hash_algorithm: str = "sm3") -> tuple[TimestampRequest, bytes]:
    request = build_request(digest(hash_algorithm, data), hash_algorithm)
    return request, parse_response(issuer.respond(request.der))


def check(issuer: TimestampIssuer, request: TimestampRequest, token: bytes) -> TimestampToken:
    return verify_token(
        token,
        data_digest=request.digest,
        hash_algorithm=request.hash_algorithm,
        anchors=issuer.trust_anchors,
        nonce=request.nonce,
    )


@pytest.mark.parametrize("hash_algorithm", ["sm3", "sha256"])
def test_round_trip(issuer: TimestampIssuer, hash_algorithm: str) -> None:
    request, token = stamp(issuer, hash_algorithm=hash_algorithm)
    verified = check(issuer, request, token)
    assert verified.der == token and verified.hash_algorithm == hash_algorithm
    assert verified.digest == digest(hash_algorithm, DATA)
    assert verified.gen_time.tzinfo is not None
    assert abs(datetime.now(UTC) - verified.gen_time) < timedelta(seconds=5)
    assert verified.tsa == f"CN=Sandbox TSA {issuer.algorithm},O=Qihuang Sandbox,C=CN"
    assert request.nonce.bit_length() == 64


def test_stored_token_verifies_again_later(issuer: TimestampIssuer) -> None:
    request, token = stamp(issuer)
    stored = check(issuer, request, token).model_dump_json()
    restored = TimestampToken.model_validate_json(stored)
    restored.verify(DATA, issuer.trust_anchors)
    with pytest.raises(TimestampMismatch):
        restored.verify(DATA + b"!", issuer.trust_anchors)
    # A stored field edited apart from the token is caught too.
    edited = restored.model_copy(update={"gen_time": restored.gen_time - timedelta(days=1)})
    with pytest.raises(TimestampMismatch, match="stored timestamp fields"):
        edited.verify(DATA, issuer.trust_anchors)


def test_serials_increase(ecdsa_issuer: TimestampIssuer) -> None:
    serials = [check(ecdsa_issuer, *stamp(ecdsa_issuer)).serial for _ in range(5)]
    assert serials == sorted(set(serials))


def test_wrong_data(issuer: TimestampIssuer) -> None:
    _, token = stamp(issuer)
    with pytest.raises(TimestampMismatch, match="other data"):
        verify_token(token, data_digest=digest("sm3", b"other"), hash_algorithm="sm3", anchors=issuer.trust_anchors)
    with pytest.raises(TimestampMismatch, match="other data"):
        verify_token(token, data_digest=digest("sha256", DATA), hash_algorithm="sha256", anchors=issuer.trust_anchors)


def test_wrong_nonce(issuer: TimestampIssuer) -> None:
    request, token = stamp(issuer)
    with pytest.raises(TimestampMismatch, match="nonce"):
        verify_token(
            token,
            data_digest=request.digest,
            hash_algorithm="sm3",
            anchors=issuer.trust_anchors,
            nonce=request.nonce + 1,
        )


def test_untrusted_tsa(sm2_issuer: TimestampIssuer, ecdsa_issuer: TimestampIssuer) -> None:
    request, token = stamp(sm2_issuer)
    with pytest.raises(UntrustedTimestamp):
        check(ecdsa_issuer, request, token)
    # Another SM2 root with the very same names is no substitute for the real one.
    with pytest.raises(UntrustedTimestamp):
        check(TimestampIssuer("sm2"), request, token)


def test_tsa_certificate_itself_as_anchor(issuer: TimestampIssuer) -> None:
    request, token = stamp(issuer)
    verify_token(token, data_digest=request.digest, hash_algorithm="sm3", anchors=[issuer.certificate])


def test_token_without_certificates(ecdsa_issuer: TimestampIssuer) -> None:
    request = build_request(digest("sha256", DATA), "sha256")
    bare = asn1_tsp.TimeStampReq({**asn1_tsp.TimeStampReq.load(request.der).native, "cert_req": False})
    token = parse_response(ecdsa_issuer.respond(bare.dump()))
    # With certReq false the token names its TSA certificate but does not carry it: only an anchor can supply it.
    verify_token(token, data_digest=request.digest, hash_algorithm="sha256", anchors=[ecdsa_issuer.certificate])
    with pytest.raises(UntrustedTimestamp, match="neither in the token"):
        check(ecdsa_issuer, request, token)


def test_tampered_tstinfo(issuer: TimestampIssuer) -> None:
    request, token = stamp(issuer)
    nonce = request.nonce.to_bytes(8, "big")
    assert token.count(nonce) == 1
    altered = token.replace(nonce, nonce[:-1] + bytes([nonce[-1] ^ 1]))
    with pytest.raises(InvalidTimestamp, match="message-digest") as raised:
        check(issuer, request, altered)
    # Integrity is checked before content: an altered token never passes for a mere mismatch.
    assert type(raised.value) is InvalidTimestamp


def test_tampered_signature(issuer: TimestampIssuer) -> None:
    request, token = stamp(issuer)
    # The SignerInfo's signature is the token's last field; its last byte is part of s.
    altered = token[:-1] + bytes([token[-1] ^ 1])
    with pytest.raises(InvalidTimestamp, match="signature") as raised:
        check(issuer, request, altered)
    assert type(raised.value) is InvalidTimestamp


def test_garbage_is_invalid(ecdsa_issuer: TimestampIssuer) -> None:
    request, token = stamp(ecdsa_issuer)
    with pytest.raises(InvalidTimestamp):
        check(ecdsa_issuer, request, token[: len(token) // 2])
    with pytest.raises(InvalidTimestamp):
        parse_response(b"\x30\x03\x02\x01")


def test_rejection_is_reported() -> None:
    issuer = TimestampIssuer("ecdsa")
    issuer.refusal = "time_not_available"
    with pytest.raises(TimestampRejected) as rejected:
        stamp(issuer)
    assert rejected.value.status == "rejection"
    assert rejected.value.failures == ("time_not_available",)
    assert "told to refuse" in str(rejected.value)


def test_issuer_refuses_bad_requests(ecdsa_issuer: TimestampIssuer) -> None:
    request = asn1_tsp.TimeStampReq.load(build_request(digest("sha256", DATA), "sha256").der)
    cases = {
        "bad_alg": {"hash_algorithm": {"algorithm": "1.3.14.3.2.26"}, "hashed_message": b"\x00" * 20},
        "bad_data_format": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x00" * 20},
    }
    for failure, imprint in cases.items():
        odd = asn1_tsp.TimeStampReq({**request.native, "message_imprint": imprint})
        with pytest.raises(TimestampRejected) as rejected:
            parse_response(ecdsa_issuer.respond(odd.dump()))
        assert rejected.value.failures == (failure,)
    with pytest.raises(TimestampRejected) as rejected:
        parse_response(ecdsa_issuer.respond(b"not DER"))
    assert rejected.value.failures == ("bad_data_format",)


def test_build_request_checks_the_digest() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        build_request(b"short", "sha256")
    with pytest.raises(ValueError, match="unsupported"):
        build_request(b"\x00" * 16, "md5")


def test_keys_are_kept_in_key_dir(tmp_path: Path) -> None:
    first = TimestampIssuer("sm2", key_dir=tmp_path)
    request, token = stamp(first)
    second = TimestampIssuer("sm2", key_dir=tmp_path)
    assert second.root.dump() == first.root.dump()
    check(second, request, token)
    check(second, *stamp(second))
    assert (tmp_path / "tsa-sm2.key").stat().st_mode & 0o777 == 0o600


# --- interop with OpenSSL's own TSA (`openssl ts`) and CMS signer (`openssl cms`) ---


@dataclass(frozen=True)
class OpenSslPki:
    """An EC P-256 root issuing an EC and an RSA TSA certificate, and one whose timeStamping EKU is not critical."""

    directory: Path

    @property
    def anchors_pem(self) -> bytes:
        return (self.directory / "ca.pem").read_bytes()

    def reply(self, request: TimestampRequest, signer: str) -> bytes:
        (self.directory / "request.tsq").write_bytes(request.der)
        openssl(
            self.directory,
            "ts", "-reply", "-config", "tsa.cnf", "-section", f"tsa_{signer}",
            "-queryfile", "request.tsq", "-out", "reply.tsr",
        )  # fmt: skip
        return (self.directory / "reply.tsr").read_bytes()


def openssl(directory: Path, *args: str) -> str:
    done = subprocess.run(["openssl", *args], cwd=directory, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


_EXTENSIONS = """
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = OpenSSL Test TSA Root
[ v3_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ v3_tsa ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ v3_lax_tsa ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = timeStamping
"""

_TSA_SECTION = """
[ tsa_{name} ]
dir = {directory}
serial = $dir/serial
signer_cert = $dir/{name}.pem
signer_key = $dir/{name}.key
certs = $dir/ca.pem
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.2
digests = sha256, sm3
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = {ess}
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> OpenSslPki:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI")
    directory = tmp_path_factory.mktemp("openssl-tsa")
    (directory / "ext.cnf").write_text(_EXTENSIONS)
    openssl(directory, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ca.key")
    openssl(directory, "req", "-new", "-x509", "-key", "ca.key", "-out", "ca.pem", "-days", "30",
            "-config", "ext.cnf", "-extensions", "v3_ca")  # fmt: skip
    for name, key_args, extensions in (
        ("ec", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], "v3_tsa"),
        ("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], "v3_tsa"),
        ("lax", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], "v3_lax_tsa"),
    ):
        openssl(directory, "genpkey", *key_args, "-out", f"{name}.key")
        openssl(
            directory, "req", "-new", "-key", f"{name}.key", "-subj", f"/CN=OpenSSL {name} TSA", "-out", f"{name}.csr"
        )
        openssl(directory, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "30",
                "-extfile", "ext.cnf", "-extensions", extensions)  # fmt: skip
    # The EC TSA names its certificate with ESSCertIDv2 (SHA-256), the RSA one with ESSCertID v1 (SHA-1).
    sections = [_TSA_SECTION.format(name="ec", directory=directory, ess="sha256")]
    sections.append(_TSA_SECTION.format(name="rsa", directory=directory, ess="sha1"))
    (directory / "tsa.cnf").write_text("".join(sections))
    (directory / "serial").write_text("01\n")
    return OpenSslPki(directory)


@pytest.mark.parametrize("signer", ["ec", "rsa"])
@pytest.mark.parametrize("hash_algorithm", ["sha256", "sm3"])
def test_openssl_tokens_verify(pki: OpenSslPki, signer: str, hash_algorithm: str) -> None:
    request = build_request(digest(hash_algorithm, DATA), hash_algorithm)
    token = parse_response(pki.reply(request, signer))
    anchors = load_certificates(pki.anchors_pem)
    verified = verify_token(
        token, data_digest=request.digest, hash_algorithm=hash_algorithm, anchors=anchors, nonce=request.nonce
    )
    assert verified.tsa == f"CN=OpenSSL {signer} TSA"
    verified.verify(DATA, anchors)
    with pytest.raises(TimestampMismatch):
        verify_token(token, data_digest=request.digest, hash_algorithm=hash_algorithm, anchors=anchors, nonce=1)


def test_openssl_rejection(pki: OpenSslPki) -> None:
    # OpenSSL's TSA was told to accept only sha256 and sm3 imprints.
    request = build_request(digest("sha512", DATA), "sha512")
    with pytest.raises(TimestampRejected) as rejected:
        parse_response(pki.reply(request, "ec"))
    assert rejected.value.failures == ("bad_alg",)


def test_lax_eku_is_untrusted(pki: OpenSslPki) -> None:
    # `openssl ts` refuses to sign with such a certificate, so the token is a CMS SignedData made by `openssl cms`.
    tst_info = asn1_tsp.TSTInfo(
        {
            "version": "v1",
            "policy": "1.2.3.4.1",
            "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest("sha256", DATA)},
            "serial_number": 7,
            "gen_time": datetime.now(UTC).replace(microsecond=0),
        }
    )
    (pki.directory / "tst.der").write_bytes(tst_info.dump())
    anchors = load_certificates(pki.anchors_pem)
    for signer, expected in (("ec", None), ("lax", UntrustedTimestamp)):
        openssl(pki.directory, "cms", "-sign", "-binary", "-nodetach", "-cades", "-nosmimecap",
                "-econtent_type", "1.2.840.113549.1.9.16.1.4", "-md", "sha256", "-in", "tst.der",
                "-signer", f"{signer}.pem", "-inkey", f"{signer}.key", "-outform", "DER", "-out", f"{signer}.tst")  # fmt: skip
        token = (pki.directory / f"{signer}.tst").read_bytes()
        if expected is None:
            assert verify_token(token, data_digest=digest("sha256", DATA), hash_algorithm="sha256", anchors=anchors)
        else:
            with pytest.raises(expected, match="extendedKeyUsage"):
                verify_token(token, data_digest=digest("sha256", DATA), hash_algorithm="sha256", anchors=anchors)


@needs_openssl
@pytest.mark.parametrize("hash_algorithm", ["sha256", "sm3"])
def test_our_ecdsa_tokens_pass_openssl(ecdsa_issuer: TimestampIssuer, tmp_path: Path, hash_algorithm: str) -> None:
    _, token = stamp(ecdsa_issuer, hash_algorithm=hash_algorithm)
    (tmp_path / "data").write_bytes(DATA)
    (tmp_path / "token.der").write_bytes(token)
    (tmp_path / "root.pem").write_bytes(ecdsa_issuer.root_pem())
    output = openssl(tmp_path, "ts", "-verify", "-data", "data", "-in", "token.der", "-token_in", "-CAfile", "root.pem")
    assert "Verification: OK" in output
    # And OpenSSL notices when the data is not what was stamped.
    (tmp_path / "data").write_bytes(DATA + b"!")
    done = subprocess.run(
        ["openssl", "ts", "-verify", "-data", "data", "-in", "token.der", "-token_in", "-CAfile", "root.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0 and "Verification: FAILED" in done.stdout
