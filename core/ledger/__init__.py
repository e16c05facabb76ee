"""The evidence ledger (存证): an append-only RFC 6962-style transparency log over SM3, with SM2-signed and
RFC 3161-timestamped tree heads, kept in PostgreSQL."""
