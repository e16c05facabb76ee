"""Fan-out of consultation chat across API processes through PostgreSQL LISTEN/NOTIFY.

Whoever stores a message sends `NOTIFY consult, '<visit_id>:<message_id>'` in the same transaction, and a moved read
cursor `NOTIFY consult_read, '<visit_id>'`; PostgreSQL delivers both to every listening process after the commit.
Each API process keeps one dedicated connection listening (not from the pool: a pooled connection is handed to other
statements between uses) and a registry of the sockets open on it per visit. A notice only wakes the sockets of its
visit; each socket then reads the rows after its own cursor, so the notice carries no content and a notice lost while
the listener was down costs nothing: after reconnecting, every socket is woken to read from where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg
import structlog

MESSAGE_CHANNEL = "consult"
READ_CHANNEL = "consult_read"
# The listening connection's name in pg_stat_activity.
LISTENER_NAME = "qihuang-consult-listener"

# A connection lost without the server saying so (a dropped network path) shows only when something is sent on it.
_PING_INTERVAL_S = 10.0
_PING_TIMEOUT_S = 5.0
_RETRY_FIRST_S = 0.2
_RETRY_MAX_S = 5.0

_log = structlog.get_logger("api.consult")


def message_notice(visit_id: str, message_id: int) -> str:
    return f"{visit_id}:{message_id}"


@dataclass(eq=False)
class Subscriber:
    """One open chat socket: the id of the last message it was sent and what it still has to look at."""

    visit_id: str
    cursor: int
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Read cursors of the visit may have moved since this socket last sent them.
    reads_changed: bool = True

    def poke(self, *, reads: bool = False) -> None:
        if reads:
            self.reads_changed = True
        self.wake.set()


class ConsultHub:
    """The per-process registry of chat sockets, fed by one LISTEN connection that reconnects when lost."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._subscribers: dict[str, set[Subscriber]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        # Set while a LISTEN connection is established (for the health of this process and for tests).
        self.listening = asyncio.Event()

    def subscribe(self, visit_id: str, after: int) -> Subscriber:
        """Register a socket; it starts woken, so it sends what came after `after` at once (delayed delivery)."""
        subscriber = Subscriber(visit_id=visit_id, cursor=after)
        subscriber.poke(reads=True)
        self._subscribers[visit_id].add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        sockets = self._subscribers.get(subscriber.visit_id)
        if sockets is not None:
            sockets.discard(subscriber)
            if not sockets:
                del self._subscribers[subscriber.visit_id]

    async def start(self) -> None:
        """Listen in the background: a database that is down now is connected to when it comes back."""
        self._task = asyncio.create_task(self._listen_forever(), name="consult-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _on_message(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        visit_id, _, raw_id = payload.rpartition(":")
        message_id = int(raw_id) if raw_id.isdigit() else None
        for subscriber in self._subscribers.get(visit_id, ()):
            if message_id is None or message_id > subscriber.cursor:
                subscriber.poke()

    def _on_read(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        for subscriber in self._subscribers.get(payload, ()):
            subscriber.poke(reads=True)

    def _poke_all(self) -> None:
        for sockets in self._subscribers.values():
            for subscriber in sockets:
                subscriber.poke(reads=True)

    async def _listen_forever(self) -> None:
        delay = _RETRY_FIRST_S
        while True:
            try:
                await self._listen_once()
                # It was up and went down: try again at once, then back off while the database stays away.
                delay = _RETRY_FIRST_S
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                _log.warning("consult_listener_failed", error=type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_S)

    async def _listen_once(self) -> None:
        """Listen on one connection until it is lost: closed by the server, or silent to a ping."""
        lost = asyncio.Event()
        connection = await asyncpg.connect(self._dsn, server_settings={"application_name": LISTENER_NAME})
        try:
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(MESSAGE_CHANNEL, self._on_message)
            await connection.add_listener(READ_CHANNEL, self._on_read)
            # Listening from here on; whatever was committed while we were not, each socket reads now.
            self.listening.set()
            self._poke_all()
            _log.info("consult_listener_connected")
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), _PING_INTERVAL_S)
                except TimeoutError:
                    await connection.fetchval("SELECT 1", timeout=_PING_TIMEOUT_S)
            _log.warning("consult_listener_lost")
        finally:
            self.listening.clear()
            connection.terminate()
