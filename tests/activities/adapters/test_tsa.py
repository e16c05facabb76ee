"""TSA adapters: Rfc3161Tsa over real HTTP against the sandbox TSA served by uvicorn, and SandboxTsa in-process."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pydantic
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from activities.adapters.errors import AdapterError, AdapterRefusal
from activities.adapters.tsa import TimestampAuthority
from activities.adapters.tsa.rfc3161 import Rfc3161Tsa, TsaConfig
from activities.adapters.tsa.sandbox import SandboxTsa, TimestampIssuer, sandbox_tsa_app
from core.crypto.tsp import (
    QUERY_MEDIA_TYPE,
    REPLY_MEDIA_TYPE,
    InvalidTimestamp,
    TimestampMismatch,
    UntrustedTimestamp,
    build_request,
    digest,
)
from core.settings import Settings
from tests.simulators.serving import serve

DATA = b'{"evidence_tree_head": "9f2c", "size": 1024}'
# Neither adapter touches the database; an unbound session factory satisfies the registry's constructor shape.
SESSIONS: async_sessionmaker[AsyncSession] = async_sessionmaker()


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


def canned(status: int, body: bytes, media_type: str) -> Starlette:
    """A stand-in for a TSA or a proxy in front of one that always gives the same answer."""

    async def answer(_: Request) -> Response:
        return Response(body, status_code=status, media_type=media_type)

    return Starlette(routes=[Route("/", answer, methods=["POST"])])


def client_for(settings: Settings, url: str, anchors: TimestampIssuer, **options: Any) -> Rfc3161Tsa:
    hash_algorithm = "sm3" if anchors.algorithm == "sm2" else "sha256"
    config = TsaConfig(url=url, trust_anchors_pem=anchors.root_pem().decode(), hash_algorithm=hash_algorithm, **options)
    return Rfc3161Tsa(SESSIONS, settings, config)


async def stamp(tsa: TimestampAuthority, data: bytes = DATA) -> Any:
    return await tsa.timestamp(data_digest=digest(tsa.hash_algorithm, data), hash_algorithm=tsa.hash_algorithm)


async def test_round_trip_over_http(settings: Settings, issuer: TimestampIssuer) -> None:
    async with serve(sandbox_tsa_app(issuer)) as url:
        tsa = client_for(settings, url, issuer)
        assert isinstance(tsa, TimestampAuthority)
        first, second = await stamp(tsa), await stamp(tsa, DATA + b"\n")
    first.verify(DATA, tsa.trust_anchors)
    second.verify(DATA + b"\n", tsa.trust_anchors)
    assert first.serial < second.serial and first.gen_time <= second.gen_time
    assert first.tsa == f"CN=Sandbox TSA {issuer.algorithm},O=Qihuang Sandbox,C=CN"
    assert first.hash_algorithm == ("sm3" if issuer.algorithm == "sm2" else "sha256")


async def test_basic_auth(settings: Settings, ecdsa_issuer: TimestampIssuer) -> None:
    async with serve(sandbox_tsa_app(ecdsa_issuer, credentials=("qihuang", "s3cret"))) as url:
        (await stamp(client_for(settings, url, ecdsa_issuer, username="qihuang", password="s3cret"))).verify(
            DATA, ecdsa_issuer.trust_anchors
        )
        for options in ({"username": "qihuang", "password": "wrong"}, {}):
            with pytest.raises(AdapterRefusal) as refused:
                await stamp(client_for(settings, url, ecdsa_issuer, **options))
            assert refused.value.code == "HTTP_401"


async def test_tsa_rejection(settings: Settings) -> None:
    issuer = TimestampIssuer("ecdsa")
    async with serve(sandbox_tsa_app(issuer)) as url:
        tsa = client_for(settings, url, issuer)
        issuer.refusal = "bad_alg"
        with pytest.raises(AdapterRefusal) as refused:
            await stamp(tsa)
        assert refused.value.code == "TSA_BAD_ALG" and "rejection" in refused.value.message
        # A TSA whose clock or signer is down may well answer the next attempt: retryable.
        issuer.refusal = "system_failure"
        with pytest.raises(AdapterError, match="system_failure"):
            await stamp(tsa)


async def test_untrusted_tsa(settings: Settings, sm2_issuer: TimestampIssuer, ecdsa_issuer: TimestampIssuer) -> None:
    async with serve(sandbox_tsa_app(sm2_issuer)) as url:
        tsa = client_for(settings, url, ecdsa_issuer)
        with pytest.raises(AdapterError, match="does not verify") as raised:
            await tsa.timestamp(data_digest=digest("sm3", DATA), hash_algorithm="sm3")
    assert isinstance(raised.value.__cause__, UntrustedTimestamp)


async def test_replayed_and_altered_answers(settings: Settings, issuer: TimestampIssuer) -> None:
    hash_algorithm = "sm3" if issuer.algorithm == "sm2" else "sha256"
    # A genuine answer for the same data, but to an earlier request: its nonce is not ours.
    earlier = issuer.respond(build_request(digest(hash_algorithm, DATA), hash_algorithm).der)
    altered = earlier[:-1] + bytes([earlier[-1] ^ 1])
    for answer, cause in ((earlier, TimestampMismatch), (altered, InvalidTimestamp)):
        async with serve(canned(200, answer, REPLY_MEDIA_TYPE)) as url:
            with pytest.raises(AdapterError) as raised:
                await stamp(client_for(settings, url, issuer))
        assert type(raised.value.__cause__) is cause


async def test_http_failures(settings: Settings, ecdsa_issuer: TimestampIssuer) -> None:
    for app, expected in (
        (canned(503, b"maintenance", "text/plain"), AdapterError),
        (canned(200, b"<html>gateway</html>", "text/html"), AdapterError),
        (canned(400, b"bad request", "text/plain"), AdapterRefusal),
    ):
        async with serve(app) as url:
            with pytest.raises(expected):
                await stamp(client_for(settings, url, ecdsa_issuer))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(AdapterError, match="unreachable"):
        await stamp(client_for(settings, f"http://127.0.0.1:{port}/", ecdsa_issuer, timeout_s=2))


async def test_app_wants_a_timestamp_query(ecdsa_issuer: TimestampIssuer) -> None:
    transport = httpx.ASGITransport(app=sandbox_tsa_app(ecdsa_issuer))
    async with httpx.AsyncClient(transport=transport, base_url="http://tsa") as client:
        wrong = await client.post("/", content=b"x", headers={"Content-Type": "text/plain"})
        right = await client.post(
            "/",
            content=build_request(digest("sha256", DATA), "sha256").der,
            headers={"Content-Type": QUERY_MEDIA_TYPE},
        )
    assert wrong.status_code == 415
    assert right.status_code == 200 and right.headers["content-type"] == REPLY_MEDIA_TYPE


async def test_sandbox_tsa_in_process(settings: Settings) -> None:
    tsa = SandboxTsa(SESSIONS, settings)
    assert tsa.issuer is SandboxTsa(SESSIONS, settings).issuer  # one issuer per process: adapters agree
    tsa = SandboxTsa(SESSIONS, settings, issuer=TimestampIssuer())  # its own, since this test makes it refuse
    assert isinstance(tsa, TimestampAuthority)
    assert tsa.name == "sandbox" and tsa.hash_algorithm == "sm3"
    token = await stamp(tsa)
    token.verify(DATA, tsa.trust_anchors)
    tsa.issuer.refusal = "unaccepted_policy"
    with pytest.raises(AdapterRefusal) as refused:
        await stamp(tsa)
    assert refused.value.code == "TSA_UNACCEPTED_POLICY"


def test_config_is_checked(settings: Settings) -> None:
    with pytest.raises(pydantic.ValidationError, match="PEM"):
        TsaConfig(url="https://tsa.example.cn/", trust_anchors_pem="not a certificate")
    with pytest.raises(ValueError, match="QIHUANG_TSA_URL"):
        Rfc3161Tsa(SESSIONS, settings)


async def test_the_rfc3161_tsa_is_configured_from_settings(tmp_path, settings: Settings) -> None:
    issuer = TimestampIssuer()
    anchors = tmp_path / "tsa-root.pem"
    anchors.write_bytes(issuer.root_pem())
    configured = settings.model_copy(
        update={"tsa_url": "https://tsa.example.cn/tsr", "tsa_trust_anchors_file": str(anchors), "tsa_username": "u"}
    )
    tsa = Rfc3161Tsa(SESSIONS, configured)
    assert (str(tsa.config.url), tsa.hash_algorithm, tsa.config.username) == ("https://tsa.example.cn/tsr", "sm3", "u")
    assert [cert.dump() for cert in tsa.trust_anchors] == [cert.dump() for cert in issuer.trust_anchors]
