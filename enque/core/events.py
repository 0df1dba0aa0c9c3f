"""Events raised by service functions: published after commit to the broker and to reactions.

A service function calls `emit(session, event)`. Once the transaction commits, the event goes
to the broker (real-time fan-out, in-process or Redis pub/sub) and then to every reaction
registered on the runtime (automations, notifications, webhooks), in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from enque.core.db import new_id, now, on_commit, per_commit

log = logging.getLogger(__name__)


@dataclass
class Event:
    """One change, as the real-time protocol names it (`ticket.updated`, …)."""

    type: str
    workspace_id: str
    payload: dict[str, Any]
    channels: list[str] = field(default_factory=list)
    agent_id: str | None = None  # only this agent receives it (notifications)
    actor: dict[str, Any] | None = None  # who made the change: {"type": "agent"|..., "id": …}
    depth: int = 0  # 0: made by a person, mail or the system; n: n reaction steps after that
    chain: list[str] = field(default_factory=list)  # the automation rules that led to it
    id: str = field(default_factory=new_id)
    ts: int = field(default_factory=now)

    def wire(self) -> dict[str, Any]:
        """The message a WebSocket client receives."""
        return {"type": self.type, "payload": self.payload, "ts": self.ts, "id": self.id}

    def to_json(self) -> bytes:
        return orjson.dumps(self.__dict__)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        return cls(**orjson.loads(raw))


Handler = Callable[[Event], None]
Reaction = Callable[[Event], Awaitable[None]]
GapHandler = Callable[[], None]


class Broker(Protocol):
    async def publish(self, event: Event) -> None: ...
    def listen(self, handler: Handler) -> Callable[[], None]: ...
    def on_gap(self, handler: GapHandler) -> Callable[[], None]: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class MemoryBroker:
    """Fan-out inside one process. Handlers must not block (they enqueue)."""

    def __init__(self) -> None:
        self._handlers: list[Handler] = []
        self._gap_handlers: list[GapHandler] = []

    def listen(self, handler: Handler) -> Callable[[], None]:
        self._handlers.append(handler)
        return lambda: self._handlers.remove(handler) if handler in self._handlers else None

    def on_gap(self, handler: GapHandler) -> Callable[[], None]:
        """`handler` runs when events may have been missed: the shared broker lost its
        connection and has it back (never in one process)."""
        self._gap_handlers.append(handler)
        return lambda: self._gap_handlers.remove(handler) if handler in self._gap_handlers else None

    def gap(self) -> None:
        for handler in list(self._gap_handlers):
            try:
                handler()
            except Exception:
                log.exception("gap handler failed")

    def dispatch(self, event: Event) -> None:
        for handler in list(self._handlers):
            try:
                handler(event)
            except Exception:
                log.exception("event handler failed")

    async def publish(self, event: Event) -> None:
        self.dispatch(event)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._handlers.clear()


class RedisBroker(MemoryBroker):
    """Redis pub/sub, one channel per workspace: an event raised on any worker reaches all."""

    def __init__(self, url: str, prefix: str = "enque:") -> None:
        super().__init__()
        self.url = url
        self.prefix = prefix
        import redis.asyncio as aioredis  # only when Redis is configured: the import is slow

        from enque.core.cache import redis_retry

        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=50,
            timeout=5,
            socket_connect_timeout=5,
            retry=redis_retry(),
        )
        self.client = aioredis.Redis.from_pool(pool)
        self._task: asyncio.Task[None] | None = None

    def channel(self, workspace_id: str) -> str:
        return f"{self.prefix}events:{workspace_id}"

    async def publish(self, event: Event) -> None:
        await self.client.publish(self.channel(event.workspace_id), event.to_json())

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="redis-broker")

    async def _run(self) -> None:
        pattern = f"{self.prefix}events:*"
        lost = False
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(pattern)
                if lost:  # events published meanwhile never reached this process
                    lost = False
                    log.warning("redis broker connection back; events may have been missed")
                    self.gap()
                async for message in pubsub.listen():
                    if message and message.get("type") == "pmessage":
                        self.dispatch(Event.from_json(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:
                if not lost:
                    log.warning("redis broker connection lost; reconnecting", exc_info=True)
                lost = True
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await super().stop()
        await self.client.aclose()


def make_broker(redis_url: str | None, prefix: str = "enque:") -> Broker:
    return RedisBroker(redis_url, prefix) if redis_url else MemoryBroker()


_CAUSE: ContextVar[tuple[int, tuple[str, ...]]] = ContextVar("enque_event_cause", default=(0, ()))


@contextlib.contextmanager
def caused_by(depth: int, chain: Iterable[str]) -> Iterator[None]:
    """Events emitted inside this block carry `depth` and `chain` (loop guards read them)."""
    token = _CAUSE.set((depth, tuple(chain)))
    try:
        yield
    finally:
        _CAUSE.reset(token)


@dataclass
class Delivery:
    """The events of one commit, delivered one after another: a reaction may look at the
    others (`delivering()`) and keep what it read for them in `memo`."""

    events: list[Event] = field(default_factory=list)
    memo: dict[str, Any] = field(default_factory=dict)


_DELIVERING: ContextVar[Delivery | None] = ContextVar("enque_delivering", default=None)


def delivering() -> Delivery | None:
    """The commit whose event the running reaction handles (None outside a delivery)."""
    return _DELIVERING.get()


def emit(session: AsyncSession, event: Event) -> None:
    """Publish `event` and run reactions once the session's unit of work commits."""
    from enque.core.runtime import runtime_of

    runtime = runtime_of(session)
    depth, chain = _CAUSE.get()
    if depth > event.depth:
        event.depth = depth
    if chain:
        event.chain = list(dict.fromkeys([*event.chain, *chain]))
    delivery: Delivery = per_commit(session, "events", Delivery)
    delivery.events.append(event)

    async def deliver() -> None:
        try:
            await runtime.broker.publish(event)
        except Exception:
            log.exception("publishing %s failed", event.type)
        token = _DELIVERING.set(delivery)
        try:
            for reaction in list(runtime.reactions):
                try:
                    await reaction(event)
                except Exception:
                    log.exception("reaction to %s failed", event.type)
        finally:
            _DELIVERING.reset(token)

    on_commit(session, deliver)
