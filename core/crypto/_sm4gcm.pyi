# The C extension core/crypto/_sm4gcm.c; it takes any contiguous buffer.
_Data = bytes | bytearray | memoryview

NONCE: int
TAG: int

class Key:
    def __init__(self, key: _Data) -> None: ...
    def encrypt(self, plaintext: _Data, aad: _Data = b"", /) -> bytes: ...
    def decrypt(self, blob: _Data, aad: _Data = b"", /) -> bytes: ...
