"""Where the system libcrypto 3 is, for the ctypes bindings (SM2 in _sm2_openssl, SM4-GCM in _sm4_openssl)."""

from __future__ import annotations

import ctypes.util
import os


def library_candidates() -> list[str]:
    # On Linux Python's ssl module links libcrypto.so.3, so loading it by soname gets that very copy. Only
    # versioned names qualify: macOS's unversioned libcrypto.dylib is a stub that aborts the process when loaded.
    names = ["libcrypto.so.3", ctypes.util.find_library("crypto")]
    return list(dict.fromkeys(name for name in names if name and ".3" in os.path.basename(name)))
