"""Per-minute rate limits on PostgreSQL's counters (api.gateway.store), and the 429 problem they answer with.

The integration gateway limits each application; public endpoints that anyone may call without signing in (staff
registration) limit each client address with the same counter, so every API process behind a load balancer sees the
same counts. The client address is the one the ASGI server reports: behind a proxy, run uvicorn with
--proxy-headers and --forwarded-allow-ips so that it is the caller's and not the proxy's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import asyncpg
from starlette.requests import Request

from api.errors import Problem
from api.gateway import store
from core.crypto.sm import sm3_hex

# store.count's caller column holds 40 characters: every IPv6 address in its compressed form fits.
_CALLER_LENGTH = 40


def rate_limited(admission: store.Admission, detail: Callable[[int], str]) -> Problem:
    """429 RATE_LIMITED with Retry-After: the seconds left in the current minute; `detail` says so in zh-CN."""
    retry_after = max(1, int(admission.window_left_s + 0.999))
    return Problem(
        429,
        "RATE_LIMITED",
        "请求过于频繁，请稍后再试",
        detail(retry_after),
        headers={"Retry-After": str(retry_after)},
    )


def client_address(request: Request) -> str:
    """The caller's address as counted: normalised, so one address has one count however it was written."""
    host = request.client.host if request.client else ""
    if not host:
        return "unknown"
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        # Not an address (a test transport's name, a Unix socket): counted all the same, within the column's size.
        return host if len(host) <= _CALLER_LENGTH else "h:" + sm3_hex(host.encode())[: _CALLER_LENGTH - 2]


async def limit_address(pg: asyncpg.Pool, request: Request, kind: str, per_minute: int) -> None:
    """Count this request against its client address under `kind`; 429 past `per_minute` this minute."""
    admission = await store.count(pg, client_address(request), kind)
    if admission.hits > per_minute:
        raise rate_limited(
            admission, lambda seconds: f"同一网络地址每分钟最多提交 {per_minute} 次，请在 {seconds} 秒后重试。"
        )
