"""The shared infrastructure the rest of the suite stands on."""

from __future__ import annotations

from sqlalchemy import text
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from core.crypto.sm import FieldCipher


async def test_database_is_migrated(sessions) -> None:
    async with sessions() as session:
        tables = (
            await session.execute(text("SELECT count(*) FROM information_schema.tables WHERE table_name = 'slots'"))
        ).scalar()
    assert tables == 1


async def test_temporal_dev_server_answers(client) -> None:
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    assert info.server_version


def test_field_cipher_round_trip_and_binding(settings) -> None:
    cipher = FieldCipher(settings.pii_key, settings.blind_index_key)
    token = cipher.encrypt("phone", "13800138000")
    assert token is not None and "13800138000" not in token
    assert cipher.decrypt("phone", token) == "13800138000"
    try:
        cipher.decrypt("id_card", token)
    except ValueError:
        pass
    else:
        raise AssertionError("a ciphertext moved to another column must not decrypt")
    assert cipher.blind_index("phone", "138 0013 8000") == cipher.blind_index("phone", "13800138000")
