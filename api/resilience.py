"""Circuit breakers for the downstream dependencies of integration endpoints (8.5.8.3).

A breaker counts consecutive failures of one dependency (PostgreSQL, Temporal, …). At the threshold it opens: calls
are answered at once with 503 `SERVICE_UNAVAILABLE` and a `Retry-After`, instead of piling up on a dependency that is
down. After `reset_after_s` it lets one probe through (half-open): success closes it, failure opens it again.

Breakers are per API process on purpose. They protect this process's connections and event loop, and a process that
cannot reach a dependency should back off even while another one can; nothing about a caller is kept, so the API
stays stateless behind any load balancer.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import IntEnum

import asyncpg

from api.errors import Problem
from core.settings import Settings

# What "PostgreSQL is unavailable" looks like through asyncpg: refused or dropped connections, a server starting or
# shutting down, no connection slots left. Query errors are not outages.
POSTGRES_OUTAGES: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
)


class BreakerState(IntEnum):
    # The values are what the `qihuang_circuit_breaker_state` gauge shows.
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


def unavailable(retry_after_s: float) -> Problem:
    seconds = max(1, math.ceil(retry_after_s))
    return Problem(
        503,
        "SERVICE_UNAVAILABLE",
        "服务暂时不可用",
        f"依赖的服务暂时不可用，请在 {seconds} 秒后重试。",
        headers={"Retry-After": str(seconds)},
    )


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        reset_after_s: float,
        failures: tuple[type[BaseException], ...],
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, BreakerState], None] | None = None,
    ) -> None:
        self.name = name
        self._threshold = failure_threshold
        self._reset_after = reset_after_s
        # A dependency that hangs is as unavailable as one that refuses.
        self._failures: tuple[type[BaseException], ...] = (TimeoutError, *failures)
        self._timeout = timeout_s
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        return self._state

    def _set(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            if self._on_change is not None:
                self._on_change(self.name, state)

    def _admit(self) -> None:
        if self._state is BreakerState.OPEN:
            waited = self._clock() - self._opened_at
            if waited < self._reset_after:
                raise unavailable(self._reset_after - waited)
            self._set(BreakerState.HALF_OPEN)
        if self._state is BreakerState.HALF_OPEN:
            if self._probing:
                # One probe at a time: the others would only pile onto a dependency that may still be down.
                raise unavailable(1)
            self._probing = True

    def _succeeded(self) -> None:
        self._probing = False
        self._consecutive = 0
        self._set(BreakerState.CLOSED)

    def _failed(self) -> None:
        self._probing = False
        self._consecutive += 1
        if self._state is BreakerState.HALF_OPEN or self._consecutive >= self._threshold:
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN)

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run a call to the dependency inside: 503 at once while open; a failure (or a call slower than the timeout)
        is counted and answered with 503.

        Only the dependency call belongs inside. An exception that is not a dependency failure (a cancelled request)
        leaves the breaker as it was.
        """
        self._admit()
        try:
            async with asyncio.timeout(self._timeout):
                yield
        except self._failures as failure:
            self._failed()
            raise unavailable(self._reset_after if self._state is BreakerState.OPEN else 1) from failure
        except BaseException:
            self._probing = False
            raise
        self._succeeded()


class Breakers:
    """The breakers of one app, one per dependency name, made on first use with the settings' thresholds."""

    def __init__(self, on_change: Callable[[str, BreakerState], None] | None = None) -> None:
        self._breakers: dict[str, CircuitBreaker] = {}
        self._on_change = on_change

    def get(self, name: str, settings: Settings, failures: tuple[type[BaseException], ...]) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(
                name,
                failure_threshold=settings.gateway_breaker_failures,
                reset_after_s=settings.gateway_breaker_reset_s,
                failures=failures,
                timeout_s=settings.gateway_dependency_timeout_s,
                on_change=self._on_change,
            )
            self._breakers[name] = breaker
            if self._on_change is not None:
                self._on_change(name, breaker.state)
        return breaker
