"""Temporal payloads are sealed with SM4-GCM (DESIGN §6): round trip, tamper detection, key rotation, plaintext
passthrough for old histories, and what the Temporal server actually stores."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from core.payload_codec import CIPHER, ENCODING, KEY_ID_METADATA, Sm4PayloadCodec, parse_key
from core.settings import Settings
from core.temporal import PLAINTEXT_CONVERTER, data_converter

OLD_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
NEW_KEY = bytes.fromhex("f0e0d0c0b0a090807060504030201000")
# What must never reach the Temporal server in the clear.
SECRET = "患者张三，手机 13800138000，主诉胃脘痛"


def plain(value: object) -> Payload:
    return PLAINTEXT_CONVERTER.payload_converter.to_payloads([value])[0]


def value_of(payload: Payload) -> object:
    return PLAINTEXT_CONVERTER.payload_converter.from_payloads([payload])[0]


async def test_round_trip_keeps_metadata_and_data() -> None:
    codec = Sm4PayloadCodec({"k1": OLD_KEY}, "k1")
    original = [plain(SECRET), plain({"visit_id": "v-1", "fee_fen": 5000}), plain(None)]

    sealed = await codec.encode(original)

    assert all(p.metadata["encoding"] == ENCODING for p in sealed)
    assert all(p.metadata["encryption-cipher"] == CIPHER and p.metadata[KEY_ID_METADATA] == b"k1" for p in sealed)
    assert SECRET.encode() not in sealed[0].data
    assert await codec.decode(sealed) == original


async def test_each_sealing_uses_a_fresh_nonce() -> None:
    codec = Sm4PayloadCodec({"k1": OLD_KEY}, "k1")
    first, second = await codec.encode([plain(SECRET), plain(SECRET)])
    assert first.data != second.data
    assert await codec.decode([first, second]) == [plain(SECRET)] * 2


async def test_altered_ciphertext_or_key_id_is_refused() -> None:
    codec = Sm4PayloadCodec({"k1": OLD_KEY, "k2": NEW_KEY}, "k1")
    [sealed] = await codec.encode([plain(SECRET)])

    flipped = Payload()
    flipped.CopyFrom(sealed)
    flipped.data = sealed.data[:20] + bytes([sealed.data[20] ^ 1]) + sealed.data[21:]
    with pytest.raises(ValueError, match="altered"):
        await codec.decode([flipped])

    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata[KEY_ID_METADATA] = b"k2"
    with pytest.raises(ValueError, match="altered"):
        await codec.decode([relabelled])

    foreign = Payload()
    foreign.CopyFrom(sealed)
    foreign.metadata["encryption-cipher"] = b"aes-256-gcm"
    with pytest.raises(ValueError, match="not SM4-GCM"):
        await codec.decode([foreign])


async def test_rotation_seals_with_the_new_key_and_still_opens_the_old() -> None:
    before = Sm4PayloadCodec({"2025": OLD_KEY}, "2025")
    after = Sm4PayloadCodec({"2025": OLD_KEY, "2026": NEW_KEY}, "2026")
    [old] = await before.encode([plain("old flow")])
    [new] = await after.encode([plain("new flow")])

    assert new.metadata[KEY_ID_METADATA] == b"2026"
    assert [value_of(p) for p in await after.decode([old, new])] == ["old flow", "new flow"]
    # A process still on the old configuration cannot open what the new key sealed, and says why.
    with pytest.raises(ValueError, match="unknown key '2026'"):
        await before.decode([new])


async def test_payloads_written_before_encryption_pass_through() -> None:
    codec = Sm4PayloadCodec({"k1": OLD_KEY}, "k1")
    unsealed = [plain(SECRET), plain(42)]
    assert await codec.decode(unsealed) == unsealed


def test_keys_are_read_from_hex_or_base64_and_checked() -> None:
    assert parse_key(OLD_KEY.hex()) == parse_key(OLD_KEY.hex().upper()) == OLD_KEY
    assert parse_key(base64.b64encode(OLD_KEY).decode()) == OLD_KEY
    with pytest.raises(ValueError, match="16 bytes"):
        parse_key(base64.b64encode(b"short").decode())
    with pytest.raises(ValueError, match="hex digits or base64"):
        parse_key("not a key!")

    settings = Settings(payload_keys={"a": OLD_KEY.hex()}, payload_key_id="b")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="'b' is not among"):
        Sm4PayloadCodec.from_settings(settings)
    settings = Settings(payload_keys={"a": "00ff"}, payload_key_id="a")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"QIHUANG_PAYLOAD_KEYS\['a'\]"):
        Sm4PayloadCodec.from_settings(settings)


def test_keys_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIHUANG_PAYLOAD_KEYS", f'{{"2025": "{OLD_KEY.hex()}", "2026": "{NEW_KEY.hex()}"}}')
    monkeypatch.setenv("QIHUANG_PAYLOAD_KEY_ID", "2026")
    codec = Sm4PayloadCodec.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert codec.current_key_id == "2026"


def production_refusal(**fields: Any) -> str:
    """Why `check()` refuses production with these settings ("" if it does not)."""
    try:
        Settings(env="production", **fields).check()  # type: ignore[call-arg]
    except RuntimeError as exc:
        return str(exc)
    return ""


def test_production_refuses_the_dev_payload_key_and_the_open_codec() -> None:
    assert "QIHUANG_PAYLOAD_KEYS" in production_refusal()
    own_keys = {"payload_keys": {"p1": "33" * 16}, "payload_key_id": "p1"}
    assert "QIHUANG_PAYLOAD_KEYS" not in production_refusal(**own_keys)
    assert "QIHUANG_TEMPORAL_CODEC_OPEN_LOOPBACK" in production_refusal(**own_keys, temporal_codec_open_loopback=True)


# --- what the Temporal server keeps --------------------------------------------------------------------------------


@activity.defn(name="codec_test_echo")
async def echo(text: str) -> str:
    return f"已收到：{text}"


@workflow.defn(name="CodecTest")
class CodecTestWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(echo, text, start_to_close_timeout=timedelta(seconds=30))


async def test_the_server_stores_only_ciphertext(client: Client, settings: Settings) -> None:
    queue = f"codec-{uuid.uuid4().hex[:8]}"
    workflow_id = f"codec-test-{uuid.uuid4().hex[:8]}"
    # The workflow only echoes through an activity; the sandbox is not what this test is about.
    async with Worker(
        client,
        task_queue=queue,
        workflows=[CodecTestWorkflow],
        activities=[echo],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        result = await client.execute_workflow(CodecTestWorkflow.run, SECRET, id=workflow_id, task_queue=queue)
    assert result == f"已收到：{SECRET}"

    # Read the history the way anyone with access to the Temporal server (or its database) would: without the codec.
    config = client.config()
    config["data_converter"] = PLAINTEXT_CONVERTER
    without_codec = Client(**config)
    history = await without_codec.get_workflow_handle(workflow_id).fetch_history()
    stored = b"".join(event.SerializeToString() for event in history.events)
    assert "张三".encode() not in stored
    assert b"13800138000" not in stored

    started = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    assert started.metadata["encoding"] == ENCODING
    assert started.metadata[KEY_ID_METADATA] == settings.payload_key_id.encode()
    # The same bytes open with the configured keys: this is what the workers did.
    [opened] = await data_converter(settings).payload_codec.decode([started])  # type: ignore[union-attr]
    assert value_of(opened) == SECRET
