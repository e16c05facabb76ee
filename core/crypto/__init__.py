"""国密 primitives used across the platform: SM3 digests, SM4 field encryption, HMAC-SM3 blind indexes."""
