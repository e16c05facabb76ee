"""The Temporal client every process uses, and the one data converter behind it: pydantic JSON, sealed with SM4-GCM."""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from core.payload_codec import Sm4PayloadCodec
from core.settings import Settings

# Plaintext payloads: only for the recorded test histories (tests/histories/), which are committed to be read.
PLAINTEXT_CONVERTER: DataConverter = pydantic_data_converter


def data_converter(settings: Settings) -> DataConverter:
    """What the API, the workers and the tests all use, so each can read what another wrote (DESIGN §6)."""
    return dataclasses.replace(PLAINTEXT_CONVERTER, payload_codec=Sm4PayloadCodec.from_settings(settings))


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace, data_converter=data_converter(settings)
    )
