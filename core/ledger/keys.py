"""The ledger's SM2 signing key, from the file the settings name."""

from __future__ import annotations

import os
from pathlib import Path

from core.crypto.sm2 import Sm2PrivateKey
from core.settings import Settings


def load_signing_key(settings: Settings) -> Sm2PrivateKey:
    """The key in `ledger_signing_key_file`; outside production a missing file is created with a new key.

    Production never gets a key made up for it: a head signed by a key nobody provisioned or backed up could not be
    vouched for later."""
    path = Path(settings.ledger_signing_key_file)
    if path.exists():
        return Sm2PrivateKey.from_pem(path.read_bytes())
    if settings.is_production:
        raise FileNotFoundError(f"the ledger signing key {path} does not exist")
    key = Sm2PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written owner-only to a private name, then linked into place: a second process starting at the same moment
    # either links first (and this one reads its key) or finds a complete file, never a half-written one.
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as key_file:
        key_file.write(key.to_pem())
    try:
        os.link(draft, path)
    except FileExistsError:
        return Sm2PrivateKey.from_pem(path.read_bytes())
    finally:
        draft.unlink()
    return key
