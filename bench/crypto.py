"""SM2, SM3 and SM4 throughput through our own helpers next to `openssl speed` on the same machine, in one run.

Measured, one thread, each for --seconds, ours then OpenSSL's for every item so both see the same load:
- SM2 sign and verify of a 1 KiB message with the default signer ID through core.crypto.sm2, on every available
  backend (labelled; the aim concerns the default one), against `openssl speed sm2` (which signs 20 bytes: the SM3
  of the extra KiB is about 1% of a signature); two alternating rounds, the better one of each side kept.
- at 64 B, 1 KiB, 16 KiB and 1 MiB:
  sm3: core.crypto.sm.sm3, against `openssl speed -evp sm3` (one EVP_Digest per buffer);
  sm4_gcm_seal / sm4_gcm_open: one whole message through core.crypto.sm.Sm4Gcm, the keyed object the payload codec
  and FieldCipher keep (a fresh nonce, 13 bytes of AAD, data, tag), against the
  same per-message sequence in OpenSSL: `openssl speed -aead -evp sm4-gcm` (per message: IV re-init, 13-byte AAD,
  data, final and tag). Where OpenSSL has no SM4-GCM (3.0) that figure is built from two it does measure: SM4-CTR
  over the data (-evp sm4-ctr) plus OpenSSL's own per-message AEAD cost at that size, which is -aead minus plain -evp
  for aes-128-gcm. The result leaves out GHASH over the data and the SM4 block that makes the tag mask, so it slightly
  favours OpenSSL. Open is held to the sealing figure: 3.0's `-aead -decrypt` times a failing tag check;
  sm4_cbc_per_message, sm4_cbc_stream, sm4_ecb_stream: SM4 in other modes through `cryptography`, with a new context
  per message or with one context and one update per buffer (the very loop `openssl speed -evp` runs). The product
  seals with SM4-GCM only, so these describe the binding behind the fallback backend and are not held to the aim.

Rates are per CPU-second, as `openssl speed` reports them (its user-CPU timer; ours counts user+system CPU of this
process; the native SM4-GCM counts its nonces, the other backends make a getrandom call per nonce that OpenSSL's loop
does not), so load from other work skews the ratios less than it would skew wall-clock rates; the load average and
each side's CPU share are reported too. MB = 10^6 bytes. `fixed_us` is the per-message cost beyond the data: the time for a 64 B message minus 64 B at
the 1 MiB rate. ratio = ours / openssl. Our SM3 runs in the OpenSSL that `cryptography` bundles, SM2 in the system
libcrypto, SM4-GCM in our C extension where it is built (else the system libcrypto where it has SM4-GCM, else
`cryptography`'s); `libraries` names them. Prints one JSON line.

    .venv/bin/python bench/crypto.py [--seconds 2] [--openssl openssl]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import logging
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cryptography
from cryptography.hazmat.backends.openssl.backend import backend as cryptography_backend
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from core.crypto import sm2
from core.crypto.sm import SM4_BACKENDS, Sm4Gcm, sm3

SIZES = (64, 1024, 16 * 1024, 1024 * 1024)
SM2_MESSAGE = 1024
# 13 bytes, the AAD of `openssl speed -aead`; about what the product authenticates (a payload key id, a column name).
AAD = b"key-2026-01-a"
AIM = 0.8
SM2_ROUNDS = 2
# A batch of operations between clock reads costs about this long, so reading the clock adds nothing measurable even
# to sub-microsecond operations.
BATCH_SECONDS = 0.002

log = logging.getLogger("bench")


@dataclass
class Timing:
    count: int
    cpu: float
    wall: float

    @property
    def per_cpu_s(self) -> float:
        return self.count / self.cpu if self.cpu > 0 else 0.0


@dataclass
class Totals:
    """CPU and wall time of each side, for the CPU share that tells how contended the run was."""

    ours_cpu: float = 0.0
    ours_wall: float = 0.0
    openssl_cpu: float = 0.0
    openssl_wall: float = 0.0


def run_for(operation: Callable[[], object], seconds: float, totals: Totals) -> Timing:
    operation()  # warm up: the Python SM2 backend builds its table of multiples of G on first use
    calibration = time.perf_counter()
    calls = 0
    while calls == 0 or time.perf_counter() - calibration < 0.05:
        operation()
        calls += 1
    batch = max(1, int(BATCH_SECONDS * calls / (time.perf_counter() - calibration)))
    count = 0
    cpu_clock, wall_clock = time.process_time, time.perf_counter
    cpu_start, wall_start = cpu_clock(), wall_clock()
    deadline = wall_start + seconds
    while wall_clock() < deadline:
        for _ in itertools.repeat(None, batch):
            operation()
        count += batch
    timing = Timing(count, cpu_clock() - cpu_start, wall_clock() - wall_start)
    totals.ours_cpu += timing.cpu
    totals.ours_wall += timing.wall
    return timing


@dataclass
class SpeedResult:
    operation: str  # "sign", "verify", or the cipher or digest name for data runs
    count: int
    cpu: float


class OpenSslSpeed:
    """Runs `openssl speed -mr` and reads its machine-readable lines rather than the human table:
    +DT:<name>:<seconds>:<bytes> or +DTP:<bits>:<sign|verify>:<curve>:<seconds> announce a run, and
    +R<n>:<count>:...:<cpu seconds> reports it. Rates are computed here from count and time, not taken from the
    +F summary lines, whose fields differ between versions and algorithms."""

    def __init__(self, binary: str, seconds: int, totals: Totals) -> None:
        self.binary = binary
        self.seconds = seconds
        self.totals = totals
        self._rates: dict[tuple[str, ...], float | None] = {}  # several items share a reference run

    def version(self) -> str:
        return subprocess.run([self.binary, "version"], capture_output=True, text=True, check=True).stdout.strip()

    def run(self, *args: str) -> list[SpeedResult]:
        """The results, or an empty list if this OpenSSL does not know the algorithm."""
        command = [self.binary, "speed", "-mr", "-seconds", str(self.seconds), *args]
        # One pipe for both streams keeps each announcement before its result whichever stream a version uses.
        process = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        results: list[SpeedResult] = []
        operation: str | None = None
        for line in process.stdout.splitlines():
            fields = line.strip().split(":")
            if fields[0] == "+DT" and len(fields) >= 2:
                operation = fields[1]
            elif fields[0] == "+DTP":
                operation = next((field for field in fields[1:] if field in ("sign", "verify")), None)
            elif fields[0].startswith("+R") and operation is not None and len(fields) >= 3:
                try:
                    results.append(SpeedResult(operation, int(fields[1]), float(fields[-1])))
                except ValueError:
                    continue
                operation = None
        if process.returncode != 0 or not results:
            log.info("openssl speed %s: nothing measured (%s)", " ".join(args), process.stdout.strip()[-200:])
            return []
        for result in results:
            self.totals.openssl_cpu += result.cpu
            self.totals.openssl_wall += self.seconds  # speed's alarm ends each run after that much wall time
        return results

    def bytes_per_cpu_s(self, evp: str, size: int, *flags: str) -> float | None:
        """`-evp evp` at one buffer size, with flags such as -aead; None if this OpenSSL cannot run it."""
        args = (*flags, "-bytes", str(size), "-evp", evp)
        if args not in self._rates:
            results = self.run(*args)
            self._rates[args] = results[0].count * size / results[0].cpu if results and results[0].cpu > 0 else None
        return self._rates[args]

    @functools.cache  # noqa: B019 - one OpenSslSpeed per run
    def has_cipher(self, name: str) -> bool:
        listing = subprocess.run([self.binary, "list", "-cipher-algorithms"], capture_output=True, text=True).stdout
        return name.upper() in listing.upper()

    def gcm_message_bytes_per_cpu_s(self, size: int) -> float | None:
        """OpenSSL's rate for whole SM4-GCM messages of this size (see the module docstring for 3.0)."""
        if self.has_cipher("SM4-GCM"):
            return self.bytes_per_cpu_s("sm4-gcm", size, "-aead")
        ctr = self.bytes_per_cpu_s("sm4-ctr", size)
        aead = self.bytes_per_cpu_s("aes-128-gcm", size, "-aead")
        plain = self.bytes_per_cpu_s("aes-128-gcm", size)
        if not (ctr and aead and plain):
            return None
        per_message = max(0.0, size / aead - size / plain)  # seconds OpenSSL spends per message beyond the data
        return size / (size / ctr + per_message)

    def gcm_reference(self) -> str:
        if self.has_cipher("SM4-GCM"):
            return "-aead -evp sm4-gcm"
        return "-evp sm4-ctr + per-message AEAD cost of aes-128-gcm (-aead minus -evp)"


def ratio(ours: float | None, theirs: float | None) -> float | None:
    return round(ours / theirs, 3) if ours and theirs else None


def mb(value: float | None) -> float | None:
    return None if value is None else round(value / 1e6, 2)


def fixed_us(rates: dict[int, float | None]) -> float | None:
    """Time per smallest message minus its bytes at the largest size's rate: the cost that does not scale."""
    small, large = SIZES[0], SIZES[-1]
    small_rate, large_rate = rates.get(small), rates.get(large)
    if not small_rate or not large_rate:
        return None
    # Streaming loops have no such cost; timer noise can make the difference slightly negative there.
    return max(0.0, round(1e6 * (small / small_rate - small / large_rate), 2))


def measure_sm2(seconds: int, speed: OpenSslSpeed | None, totals: Totals, misses: list[str]) -> dict[str, object]:
    message = os.urandom(SM2_MESSAGE)
    operations: dict[str, dict[str, Callable[[], object]]] = {}
    for name in sm2.available_backends():
        with sm2.use_backend(name):
            key = sm2.Sm2PrivateKey.generate()
        public, signature = key.public_key(), key.sign(message)
        operations[name] = {
            "sign": partial(key.sign, message),
            "verify": partial(public.verify, signature, message),
        }
    ours = {name: {"sign_per_s": 0.0, "verify_per_s": 0.0} for name in operations}
    theirs: dict[str, float] = {}
    # The headline figures: rounds alternate between us and OpenSSL and each side keeps its best, so a burst of
    # load from other work on the machine does not decide the ratio.
    for round_number in range(1, SM2_ROUNDS + 1):
        for name, by_operation in operations.items():
            for operation, call in by_operation.items():
                log.info("sm2 %s backend: %s (round %d)", name, operation, round_number)
                best = max(ours[name][f"{operation}_per_s"], run_for(call, seconds, totals).per_cpu_s)
                ours[name][f"{operation}_per_s"] = round(best, 1)
        if speed is not None:
            log.info("openssl speed sm2 (round %d)", round_number)
            for result in speed.run("sm2"):
                if result.cpu > 0:
                    key_name = f"{result.operation}_per_s"
                    theirs[key_name] = round(max(theirs.get(key_name, 0.0), result.count / result.cpu), 1)
    ratios = {
        name: {
            operation: ratio(rates[f"{operation}_per_s"], theirs.get(f"{operation}_per_s"))
            for operation in ("sign", "verify")
        }
        for name, rates in ours.items()
    }
    # The aim concerns the default backend; the Python one is the fallback for hosts without libcrypto 3.
    for operation, value in ratios[sm2.available_backends()[0]].items():
        if value is not None and value < AIM:
            misses.append(f"sm2_{operation}")
    return {"message_bytes": SM2_MESSAGE, "ours": ours, "openssl": theirs or None, "ratio": ratios}


def stream(context: CipherContext, data: bytes) -> Callable[[], object]:
    """One update per buffer on a long-lived context, written in place as openssl speed does (no allocation)."""
    out = bytearray(len(data) + 15)
    return lambda: context.update_into(data, out)


def one_shot_cbc(key: bytes, data: bytes) -> Callable[[], object]:
    iv = os.urandom(16)

    def operation() -> bytes:
        encryptor = Cipher(algorithms.SM4(key), modes.CBC(iv)).encryptor()
        return encryptor.update(data) + encryptor.finalize()

    return operation


def gcm_open(sm4: Sm4Gcm, data: bytes) -> Callable[[], object]:
    blob = sm4.encrypt(data, AAD)
    return lambda: sm4.decrypt(blob, AAD)


# Items reported for context and not held to the aim: not the product's SM4 (see the module docstring).
CONTEXT_ONLY = {
    "sm4_cbc_per_message": "-evp sm4-cbc, one context streamed: not like for like",
    "sm4_cbc_stream": "-evp sm4-cbc: `cryptography`'s binding, not the product's SM4-GCM",
    "sm4_ecb_stream": "-evp sm4-ecb: `cryptography`'s binding, not the product's SM4-GCM",
}


def measure_data(seconds: int, speed: OpenSslSpeed | None, totals: Totals, misses: list[str]) -> dict[str, object]:
    key = os.urandom(16)
    sm4 = Sm4Gcm(key)

    def evp(name: str) -> Callable[[int], float | None]:
        return lambda size: speed.bytes_per_cpu_s(name, size) if speed is not None else None

    def gcm(size: int) -> float | None:
        return speed.gcm_message_bytes_per_cpu_s(size) if speed is not None else None

    # name: (our operation for a buffer, OpenSSL's bytes per CPU-second for that buffer size)
    items: dict[str, tuple[Callable[[bytes], Callable[[], object]], Callable[[int], float | None]]] = {
        "sm3": (lambda data: lambda: sm3(data), evp("sm3")),
        "sm4_gcm_seal": (lambda data: lambda: sm4.encrypt(data, AAD), gcm),
        "sm4_gcm_open": (lambda data: gcm_open(sm4, data), gcm),
        "sm4_cbc_per_message": (lambda data: one_shot_cbc(key, data), evp("sm4-cbc")),
        "sm4_cbc_stream": (
            lambda data: stream(Cipher(algorithms.SM4(key), modes.CBC(os.urandom(16))).encryptor(), data),
            evp("sm4-cbc"),
        ),
        "sm4_ecb_stream": (
            lambda data: stream(Cipher(algorithms.SM4(key), modes.ECB()).encryptor(), data),
            evp("sm4-ecb"),
        ),
    }
    report: dict[str, object] = {}
    for name, (make, reference) in items.items():
        ours: dict[int, float | None] = {}
        theirs: dict[int, float | None] = {}
        for size in SIZES:
            log.info("%s, %d bytes", name, size)
            ours[size] = run_for(make(os.urandom(size)), seconds, totals).per_cpu_s * size
            theirs[size] = reference(size)
        ratios = {str(size): ratio(ours[size], theirs[size]) for size in SIZES}
        if name.startswith("sm4") and name not in CONTEXT_ONLY:
            misses.extend(f"{name}@{size}" for size, value in ratios.items() if value is not None and value < AIM)
        entry: dict[str, object] = {
            "ours": {str(size): mb(value) for size, value in ours.items()},
            "openssl": {str(size): mb(value) for size, value in theirs.items()},
            "ratio": ratios,
            "fixed_us": {"ours": fixed_us(ours), "openssl": fixed_us(theirs)},
        }
        if name.startswith("sm4_gcm"):
            entry["backend"] = sm4.backend
            entry["openssl_reference"] = speed.gcm_reference() if speed is not None else None
        if name in CONTEXT_ONLY:
            entry["openssl_reference"] = f"{CONTEXT_ONLY[name]}; not held to the aim"
        report[name] = entry
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=2, help="per measurement, ours and openssl speed's")
    parser.add_argument("--openssl", default="openssl", help="the openssl command")
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)

    totals = Totals()
    binary = shutil.which(args.openssl)
    speed = OpenSslSpeed(binary, args.seconds, totals) if binary else None
    if speed is None:
        log.warning("no %s command: OpenSSL's figures and the ratios will be null", args.openssl)
    misses: list[str] = []
    load_before = os.getloadavg()
    sm2_report = measure_sm2(args.seconds, speed, totals, misses)
    data = measure_data(args.seconds, speed, totals, misses)
    load_after = os.getloadavg()

    sm4_gcm_library = {
        "native": "core/crypto/_sm4gcm.c (table SM4, PCLMULQDQ GHASH)",
        "openssl": ssl.OPENSSL_VERSION,
        "cryptography": f"cryptography {cryptography.__version__}",
    }[SM4_BACKENDS[0]]
    result = {
        "bench": "crypto",
        "seconds": args.seconds,
        "basis": "per CPU-second",
        "load": {
            "cpus": os.cpu_count(),
            "before": [round(value, 2) for value in load_before],
            "after": [round(value, 2) for value in load_after],
        },
        "cpu_share": {
            "ours": round(totals.ours_cpu / totals.ours_wall, 2) if totals.ours_wall else None,
            "openssl": round(totals.openssl_cpu / totals.openssl_wall, 2) if totals.openssl_wall else None,
        },
        "libraries": {
            "openssl_speed": speed.version() if speed else None,
            # ctypes loads libcrypto.so.3 by soname, the very copy Python's ssl module links.
            "sm2": ssl.OPENSSL_VERSION if sm2.backend_name() == "openssl" else "pure Python (no usable libcrypto 3)",
            "sm3_sm4": f"cryptography {cryptography.__version__}, {cryptography_backend.openssl_version_text()}",
            "sm4_gcm": sm4_gcm_library,
        },
        "sm2": sm2_report,
        "mb_per_s": data,
        "aim": {"ratio": AIM, "below": misses},
    }
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
