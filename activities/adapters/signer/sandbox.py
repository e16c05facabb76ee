"""Sandbox signer for dev and tests: each person's SM2 key is derived from the sandbox secret and their id, so no key
store is needed and a signature made before a restart still verifies after it. A real deployment signs through the
CA, which keeps the keys (see `activities.adapters.signer`)."""

from __future__ import annotations

import base64

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.sandbox import recorder_for
from core.crypto.sm import hmac_sm3, sm3_hex
from core.crypto.sm2 import Sm2PrivateKey
from core.settings import Settings
from models.signature import SM2_SM3, ElectronicSignature

SYSTEM = "signer"


class SandboxSigner:
    name = "sandbox"

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._secret = settings.sandbox_signing_secret.encode()
        self._recorder = recorder_for(sessions, settings)

    async def sign(self, *, signer_id: str, data: bytes) -> ElectronicSignature:
        await self._recorder.gate(SYSTEM, "sign", sm3_hex(signer_id.encode() + b"\n" + data))
        key = Sm2PrivateKey.from_seed(hmac_sm3(self._secret, b"signer:" + signer_id.encode()))
        public_pem = key.public_key().to_pem().decode()
        return ElectronicSignature(
            algorithm=SM2_SM3,
            signer_id=signer_id,
            key_id="sandbox-" + sm3_hex(public_pem.encode())[:16],
            public_key_pem=public_pem,
            signature_b64=base64.b64encode(key.sign(data)).decode(),
        )
