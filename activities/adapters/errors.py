"""Errors adapters raise. Anything else an adapter raises is treated as retryable by the activities."""

from __future__ import annotations


class AdapterError(Exception):
    """The peer answered with a failure that a retry may fix (timeout, 5xx, rate limit)."""


class AdapterRefusal(Exception):
    """The peer refused for a business reason; retrying the same request cannot succeed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class InvalidCallback(Exception):
    """A callback whose signature, timestamp or body does not verify."""
