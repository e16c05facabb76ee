"""Schemathesis over the whole OpenAPI document: every operation, with inputs that fit its schema and inputs that do not,
anonymous and as an admin, is answered without a 5xx ("no 500 for anything a user can send").

The app runs in-process through schemathesis's ASGI transport (its own event loop thread, where the app's lifespan
runs) against a database of its own, so what the fuzzer creates never meets the other tests. The number of examples
per operation is bounded so the run stays well under two minutes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest_asyncio
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import HypothesisException
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from temporalio.client import Client

from api.auth import TOKEN_URL
from api.main import create_app
from core.db import make_engine, make_sessionmaker
from core.migrate import upgrade
from core.postgres import drop_database, ensure_database, server_url
from core.settings import Settings
from models.common import Role
from tests.api.helpers import PASSWORD, make_user
from tests.conftest import ROOT

# Examples per operation and generation mode; 109 operations x 2 callers x both modes stay within a minute or so.
EXAMPLES = {GenerationMode.POSITIVE: 6, GenerationMode.NEGATIVE: 3}
# A call that takes longer than this is reported (an update to a flow no worker runs here would wait forever).
CALL_TIMEOUT_S = 10


@dataclass
class Finding:
    operation: str
    caller: str
    status: int | str
    request: str
    answer: str

    def __str__(self) -> str:
        return f"{self.operation} as {self.caller}: {self.status}\n  {self.request}\n  -> {self.answer[:300]}"


@pytest_asyncio.fixture
async def fuzz_database_url() -> AsyncIterator[str]:
    server = server_url(ROOT / ".qihuang" / "test-pg")
    name = f"qihuang_fuzz_{uuid.uuid4().hex[:8]}"
    url = await ensure_database(server, name, fresh=True)
    engine = make_engine(Settings(database_url=url))  # type: ignore[call-arg]
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    yield url
    await drop_database(server, name)


def _fuzz(app: FastAPI, admin_username: str) -> list[Finding]:
    """Runs in a thread: schemathesis drives the app synchronously through its own event loop."""
    findings: list[Finding] = []
    try:
        # Loading the schema starts the app's lifespan in schemathesis's event loop; it runs until the end.
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        # schemathesis types ASGI messages as dict, Starlette as MutableMapping: the same protocol.
        with asgi.get_client(app) as http:  # type: ignore[arg-type]

            def admin_headers() -> dict[str, str]:
                answer = http.post(TOKEN_URL, data={"username": admin_username, "password": PASSWORD})
                assert answer.status_code == 200, answer.text
                return {"Authorization": f"Bearer {answer.json()['access_token']}"}

            callers: dict[str, dict[str, str]] = {"anonymous": {}, "admin": admin_headers()}
            for result in schema.get_all_operations():
                if isinstance(result, Err):
                    raise result.err()  # the document itself is broken
                operation = result.ok()
                for caller in callers:
                    for mode, examples in EXAMPLES.items():
                        findings += _run(operation, http, callers, caller, mode, examples)
                    if caller == "admin" and http.get("/api/v1/me", headers=callers["admin"]).status_code == 401:
                        callers["admin"] = admin_headers()  # the fuzzer logged itself out or changed the session
    finally:
        # Closes the app's database pool before its database is dropped.
        asgi.shutdown_lifespans()
    return findings


def _run(
    operation: schemathesis.APIOperation,
    http: asgi.ASGIClient,
    callers: dict[str, dict[str, str]],
    caller: str,
    mode: GenerationMode,
    examples: int,
) -> list[Finding]:
    found: list[Finding] = []

    @hypothesis_settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        try:
            response = case.call(session=http, headers=callers[caller], timeout=CALL_TIMEOUT_S)
        except Exception as exc:  # a timeout, or the app failing after its answer started
            found.append(Finding(operation.label, caller, type(exc).__name__, case.as_curl_command(), str(exc)))
            return
        if response.status_code >= 500:
            found.append(Finding(operation.label, caller, response.status_code, case.as_curl_command(), response.text))

    try:
        check()
    except HypothesisException:
        pass  # nothing of this mode can be generated for the operation (e.g. no parameters to break)
    return found


async def test_no_operation_answers_5xx(fuzz_database_url: str, client: Client) -> None:
    settings = Settings(  # type: ignore[call-arg]
        database_url=fuzz_database_url,
        temporal_address=client.service_client.config.target_host,
        task_queue=f"fuzz-{uuid.uuid4().hex[:8]}",
    )
    engine = make_engine(settings)
    try:
        admin_id, _ = await make_user(make_sessionmaker(engine), Role.ADMIN)
    finally:
        await engine.dispose()

    findings = await asyncio.to_thread(_fuzz, create_app(settings), admin_id)

    assert not findings, "\n".join(str(finding) for finding in findings)
