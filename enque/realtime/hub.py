"""The sockets of one worker and the fan-out of broker events to them.

Every event published after a commit reaches the broker (in-process, or Redis pub/sub so all
workers see it). The hub listens there, picks the sockets of the event's workspace that
subscribed to one of its channels, checks their tokens in one cache round trip and puts the
message, serialised once, on each socket's bounded queue. Each socket has its own writer task,
so a client that does not read only fills its own queue: on overflow it gets `resync` and is
closed, and nobody else waits for it.

A sweeper runs every ping interval: it sends `ping`, drops sockets silent for longer than the
ping timeout, closes sockets whose token was revoked or expired, and renews presence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from enque.auth.context import validity_keys
from enque.auth.deps import principal_from_jwt
from enque.core.errors import ApiError
from enque.core.events import Event
from enque.core.metrics import WEBSOCKETS
from enque.core.runtime import Runtime
from enque.realtime.presence import Mark, PresenceStore, make_presence

log = logging.getLogger(__name__)

# Close codes
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_PING_TIMEOUT = 1011  # no message within the ping timeout (as keep-alive pings do)
CLOSE_RESTART = 1012  # the worker is shutting down: reconnect
CLOSE_RESYNC = 1013  # the client fell behind: reload over HTTP, then reconnect
CLOSE_UNAUTHORIZED = 4401

BROADCAST = "workspace"  # every socket of the workspace receives it (`mailbox.status`)
FIXED_CHANNELS = frozenset({"tickets", "notifications"})
MAX_MESSAGE = 64 * 1024  # bytes a client message may have
MAX_TICKET_CHANNELS = 500  # `ticket:<id>` subscriptions per socket
CLOSE_GRACE = 10.0  # seconds to hand a closing message to a client that stopped reading
INBOX_SIZE = 10_000  # events waiting for the dispatcher of one worker


def control(kind: str, payload: dict[str, Any] | None = None) -> str:
    return orjson.dumps({"type": kind, "payload": payload or {}, "ts": int(time.time())}).decode()


class Connection:
    """One authenticated socket: its subscriptions, presence and outgoing queue."""

    __slots__ = (
        "agent_epoch",
        "agent_id",
        "closer",
        "closing",
        "expires_at",
        "hub",
        "id",
        "jti",
        "known_tickets",
        "last_seen",
        "presence",
        "queue",
        "reader",
        "reading",
        "subscriptions",
        "token",
        "workspace_epoch",
        "workspace_id",
        "writer",
        "ws",
    )

    def __init__(
        self, hub: Hub, ws: WebSocket, token: str, *, agent_id: str, workspace_id: str
    ) -> None:
        self.hub = hub
        self.ws = ws
        self.token = token
        self.id = secrets.token_hex(8)
        self.agent_id = agent_id
        self.workspace_id = workspace_id
        self.jti = ""
        self.expires_at = 0
        self.agent_epoch = 0
        self.workspace_epoch = 0
        self.subscriptions: set[str] = set()
        self.known_tickets: set[str] = set()  # tickets seen to be in the workspace
        self.presence: dict[str, Mark] = {}  # ticket id → this socket's mark
        self.queue: asyncio.Queue[str] = asyncio.Queue(hub.queue_size)
        self.last_seen = time.monotonic()
        self.closing = False
        self.closer: asyncio.Task[None] | None = None
        self.reading = False  # the endpoint task waits for the client's next message
        self.reader: asyncio.Task[Any] | None = None
        self.writer: asyncio.Task[None] | None = None

    def wants(self, event: Event) -> bool:
        if event.agent_id is not None and event.agent_id != self.agent_id:
            return False
        if event.type == "presence" and (event.actor or {}).get("connection") == self.id:
            return False
        return any(c == BROADCAST or c in self.subscriptions for c in event.channels)

    def offer(self, text: str) -> None:
        """Queue a message without waiting; a full queue means the client fell behind."""
        if self.closing:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.hub.kick(self, CLOSE_RESYNC, "resync", final=control("resync"))

    async def write_loop(self) -> None:
        queue, send = self.queue, self.ws.send_text
        try:
            while True:
                await send(await queue.get())
        except (WebSocketDisconnect, OSError, RuntimeError):
            self.hub.kick(self, None, "gone")


class Hub:
    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.ping_interval = settings.realtime_ping_interval
        self.ping_timeout = settings.realtime_ping_timeout
        self.queue_size = settings.realtime_queue_size
        self.auth_timeout = settings.realtime_auth_timeout
        ttl = int(max(self.ping_interval * 2, self.ping_timeout)) + 5
        self.presence: PresenceStore = make_presence(runtime.cache, settings.redis_prefix, ttl)
        self.workspaces: dict[str, set[Connection]] = {}
        self._inbox: asyncio.Queue[Event] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closers: set[asyncio.Task[None]] = set()
        self._unlisten: Any = None
        self._unlisten_gap: Any = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._inbox = asyncio.Queue(INBOX_SIZE)
        self._unlisten = self.runtime.broker.listen(self._on_event)
        self._unlisten_gap = self.runtime.broker.on_gap(self.resync_all)
        self._tasks = [
            asyncio.create_task(self._dispatch_loop(), name="realtime-dispatch"),
            asyncio.create_task(self._sweep_loop(), name="realtime-sweep"),
        ]

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten_gap()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for conn in list(self.connections()):
            self.kick(conn, CLOSE_RESTART, "server restart")
        if self._closers:
            await asyncio.wait(list(self._closers), timeout=5)

    def connections(self) -> Iterable[Connection]:
        for conns in self.workspaces.values():
            yield from conns

    @property
    def count(self) -> int:
        return sum(len(c) for c in self.workspaces.values())

    # ------------------------------------------------------------ fan-out

    def _on_event(self, event: Event) -> None:
        """Broker handler: must not block; events of workspaces with no socket here are skipped."""
        if self._inbox is None or event.workspace_id not in self.workspaces:
            return
        try:
            self._inbox.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("real-time inbox full; asking workspace %s to resync", event.workspace_id)
            for conn in list(self.workspaces.get(event.workspace_id, ())):
                self.kick(conn, CLOSE_RESYNC, "resync", final=control("resync"))

    def resync_all(self) -> None:
        """Events may have been missed (the broker lost its connection): every socket is told
        to reload over HTTP and closed, as when its own queue overflows."""
        conns = [c for c in self.connections() if not c.closing]
        if conns:
            log.warning("asking %d sockets to resync after a broker gap", len(conns))
        for conn in conns:
            self.kick(conn, CLOSE_RESYNC, "resync", final=control("resync"))

    async def _dispatch_loop(self) -> None:
        assert self._inbox is not None
        inbox = self._inbox
        while True:
            batch = [await inbox.get()]
            while not inbox.empty() and len(batch) < 64:
                batch.append(inbox.get_nowait())
            try:
                await self._deliver(batch)
            except Exception:
                log.exception("real-time delivery failed")

    async def _deliver(self, batch: list[Event]) -> None:
        plan: list[tuple[str, list[Connection]]] = []
        everyone: set[Connection] = set()
        for event in batch:
            conns = self.workspaces.get(event.workspace_id)
            if not conns:
                continue
            targets = [c for c in conns if c.wants(event)]
            if targets:
                plan.append((orjson.dumps(event.wire()).decode(), targets))
                everyone.update(targets)
        if not plan:
            return
        refused = await self.check_tokens(everyone)
        for text, targets in plan:
            for conn in targets:
                if conn not in refused:
                    conn.offer(text)
            await asyncio.sleep(0)  # writers hand it on before the next event of a burst

    async def check_tokens(self, conns: Iterable[Connection]) -> set[Connection]:
        """The sockets whose token is expired or revoked (they are being closed with 4401).

        One cache read covers all of them: the revocation mark and the agent and workspace
        epochs. Only a socket whose epochs moved has its token checked again in full.
        """
        refused: set[Connection] = set()
        moment = time.time()
        live: list[Connection] = []
        for conn in conns:
            if conn.closing:
                refused.add(conn)
            elif conn.expires_at <= moment:
                refused.add(conn)
                self.kick(conn, CLOSE_UNAUTHORIZED, "token expired")
            else:
                live.append(conn)
        if not live:
            return refused
        groups: dict[tuple[str, str, str], list[Connection]] = {}
        for conn in live:
            groups.setdefault((conn.agent_id, conn.workspace_id, conn.jti), []).append(conn)
        keys: list[str] = []
        for agent_id, workspace_id, jti in groups:
            keys.extend(validity_keys(agent_id, workspace_id, jti))
        try:
            values = await self.runtime.cache.get_many(*keys)
        except Exception:
            log.warning("token check skipped: cache unavailable", exc_info=True)
            return refused
        for index, members in enumerate(groups.values()):
            revoked, agent_epoch, workspace_epoch = values[index * 3 : index * 3 + 3]
            if revoked is not None:
                for conn in members:
                    refused.add(conn)
                    self.kick(conn, CLOSE_UNAUTHORIZED, "token revoked")
                continue
            epochs = (int(agent_epoch or 0), int(workspace_epoch or 0))
            stale = [c for c in members if (c.agent_epoch, c.workspace_epoch) != epochs]
            if stale and not await self._recheck(stale):
                refused.update(stale)
        return refused

    async def _recheck(self, conns: list[Connection]) -> bool:
        """Check again in full the token these sockets share (one jti: one token)."""
        try:
            principal = await principal_from_jwt(self.runtime, conns[0].token)
        except ApiError as exc:
            for conn in conns:
                self.kick(conn, CLOSE_UNAUTHORIZED, exc.message or "unauthorized")
            return False
        except Exception:
            log.warning("token re-check failed", exc_info=True)
            return True
        if principal.context is not None:
            for conn in conns:
                conn.agent_epoch = principal.context.agent_epoch
                conn.workspace_epoch = principal.context.workspace_epoch
        return True

    # ------------------------------------------------------------ keep-alive

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("real-time sweep failed")

    async def sweep(self) -> None:
        """Ping every socket, drop the silent ones, re-check tokens, renew presence."""
        conns = [c for c in self.connections() if not c.closing]
        deadline = time.monotonic() - self.ping_timeout
        alive = []
        for conn in conns:
            if conn.last_seen < deadline:
                self.kick(conn, CLOSE_PING_TIMEOUT, "ping timeout")
            else:
                alive.append(conn)
        refused = await self.check_tokens(alive)
        ping = control("ping")
        marks: list[Mark] = []
        for conn in alive:
            if conn not in refused:
                conn.offer(ping)
                marks.extend(conn.presence.values())
        if marks:
            await self.presence.put(marks)

    # ------------------------------------------------------------ closing

    def kick(
        self, conn: Connection, code: int | None, reason: str, final: str | None = None
    ) -> None:
        """Close a socket from anywhere, without waiting: stop its writer, then (in a task)
        hand it `final` and the close frame, giving up after CLOSE_GRACE."""
        if conn.closing:
            return
        conn.closing = True
        if code is not None:
            log.info("closing socket of agent %s: %s %s", conn.agent_id, code, reason)
        self._forget(conn)
        if conn.writer is not None and conn.writer is not asyncio.current_task():
            conn.writer.cancel()
        task = asyncio.get_running_loop().create_task(self._close(conn, code, reason, final))
        conn.closer = task
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def _close(
        self, conn: Connection, code: int | None, reason: str, final: str | None
    ) -> None:
        try:
            if code is not None:
                async with asyncio.timeout(CLOSE_GRACE):
                    if final is not None:
                        await conn.ws.send_text(final)
                    await conn.ws.close(code, reason)
        except (TimeoutError, WebSocketDisconnect, OSError, RuntimeError):
            pass
        finally:
            if conn.reading and conn.reader is not None and not conn.reader.done():
                conn.reader.cancel()  # the client does not read: stop waiting for it
            await self._leave_all(conn)

    def add(self, conn: Connection) -> None:
        """A socket that is authenticated: it receives its workspace's events from now on."""
        self.workspaces.setdefault(conn.workspace_id, set()).add(conn)
        WEBSOCKETS.inc()  # this worker's count, kept as it changes (workers' counts are summed)

    def _forget(self, conn: Connection) -> None:
        conns = self.workspaces.get(conn.workspace_id)
        if conns is not None and conn in conns:
            conns.discard(conn)
            WEBSOCKETS.dec()
            if not conns:
                del self.workspaces[conn.workspace_id]

    # ------------------------------------------------------------ presence

    async def set_presence(self, conn: Connection, ticket_id: str, state: str) -> None:
        if state == "left":
            if conn.presence.pop(ticket_id, None) is None:
                return
            await self.presence.remove(conn.workspace_id, ticket_id, conn.id)
        else:
            old = conn.presence.get(ticket_id)
            if old is not None and old.state == state:
                await self.presence.put([old])
                return
            mark = Mark(
                conn.workspace_id,
                ticket_id,
                conn.id,
                conn.agent_id,
                state,
                old.since if old else int(time.time()),
            )
            conn.presence[ticket_id] = mark
            await self.presence.put([mark])
        await self._announce(conn, ticket_id)

    async def _announce(self, conn: Connection, ticket_id: str) -> None:
        """Tell the ticket's watchers this agent's state over all its sockets (`left` if none)."""
        viewers = await self.presence.viewers(conn.workspace_id, ticket_id)
        state = next((v["state"] for v in viewers if v["agentId"] == conn.agent_id), "left")
        event = Event(
            "presence",
            conn.workspace_id,
            {"ticketId": ticket_id, "agentId": conn.agent_id, "state": state},
            channels=[f"ticket:{ticket_id}"],
            actor={"type": "agent", "id": conn.agent_id, "connection": conn.id},
        )
        await self.runtime.broker.publish(event)

    async def _leave_all(self, conn: Connection) -> None:
        tickets = list(conn.presence)
        conn.presence.clear()
        for ticket_id in tickets:
            try:
                await self.presence.remove(conn.workspace_id, ticket_id, conn.id)
                await self._announce(conn, ticket_id)
            except Exception:
                log.warning("presence clean-up failed", exc_info=True)
