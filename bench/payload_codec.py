"""Cost of sealing Temporal payloads with SM4-GCM (core/payload_codec.py) on a typical 2 KiB payload.

The payload is a prescription-like document serialized by the pydantic converter to about 2 KiB of JSON. Reports the
codec alone (seal, open, both) and the whole data converter with and without the codec, one thread, one event loop.
Prints one JSON line.

    .venv/bin/python bench/payload_codec.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.converter import DataConverter

from core.payload_codec import Sm4PayloadCodec
from core.settings import Settings
from core.temporal import PLAINTEXT_CONVERTER, data_converter

TARGET_BYTES = 2048


def typical_value() -> dict[str, object]:
    """Ids, codes, amounts and some zh-CN text, padded with herb lines to about TARGET_BYTES of JSON."""
    value: dict[str, object] = {
        "prescription_id": "rx-3f9a1c2e7b",
        "visit_id": "v-8c1d2e3f4a",
        "patient_id": "p-1a2b3c4d5e",
        "doctor_id": "d-5e4d3c2b1a",
        "diagnosis": {"code": "BNP010", "name": "胃脘痛（脾胃虚寒证）"},
        "advice": "饭后温服，忌生冷油腻，一日两次。",
        "items": [],
    }
    items: list[dict[str, object]] = []
    value["items"] = items
    while len(PLAINTEXT_CONVERTER.payload_converter.to_payloads([value])[0].SerializeToString()) < TARGET_BYTES:
        n = len(items)
        items.append({"herb_code": f"H{n:04d}", "name": "炙甘草", "grams": 6 + n % 10, "note": "先煎", "fen": 120})
    return value


async def rate(operation: Callable[[], Awaitable[object]], seconds: float) -> float:
    await operation()
    count = 0
    clock = time.perf_counter
    started = clock()
    deadline = started + seconds
    while clock() < deadline:
        await operation()
        count += 1
    return count / (clock() - started)


async def measure(seconds: float) -> dict[str, object]:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    codec = Sm4PayloadCodec.from_settings(settings)
    sealed_converter = data_converter(settings)
    value = typical_value()
    [payload] = PLAINTEXT_CONVERTER.payload_converter.to_payloads([value])
    [sealed] = await codec.encode([payload])

    async def both() -> None:
        await codec.decode(await codec.encode([payload]))

    async def converter_round_trip(converter: DataConverter) -> None:
        await converter.decode(await converter.encode([value]))

    round_trips = await rate(both, seconds)
    plain_converter = await rate(lambda: converter_round_trip(PLAINTEXT_CONVERTER), seconds)
    with_codec = await rate(lambda: converter_round_trip(sealed_converter), seconds)
    return {
        "payload_bytes": payload.ByteSize(),
        "sealed_bytes": sealed.ByteSize(),
        "encode_per_s": round(await rate(lambda: codec.encode([payload]), seconds)),
        "decode_per_s": round(await rate(lambda: codec.decode([sealed]), seconds)),
        "encode_decode_per_s": round(round_trips),
        "encode_decode_us": round(1e6 / round_trips, 1),
        "converter_round_trip_per_s": {"plaintext": round(plain_converter), "sm4_gcm": round(with_codec)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    results = asyncio.run(measure(args.seconds))
    print(json.dumps({"bench": "payload_codec", **results}, ensure_ascii=False, separators=(",", ":")))


if __name__ == "__main__":
    main()
