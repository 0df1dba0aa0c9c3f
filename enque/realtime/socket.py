"""One WebSocket from handshake to close: authentication, then the client's messages.

The socket is accepted, then authenticated by `?token=` or a first `{"type": "auth"}` message
within the auth timeout (4401 otherwise). It is bound to the token's workspace for its life.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from enque.auth.deps import Principal, principal_from_jwt
from enque.core.errors import ApiError
from enque.realtime.hub import (
    CLOSE_POLICY,
    CLOSE_RESYNC,
    CLOSE_TOO_BIG,
    CLOSE_UNAUTHORIZED,
    FIXED_CHANNELS,
    MAX_MESSAGE,
    MAX_TICKET_CHANNELS,
    Connection,
    Hub,
    control,
)

log = logging.getLogger(__name__)

PRESENCE_STATES = frozenset({"viewing", "typing", "left"})


async def _first_token(ws: WebSocket, timeout: float) -> str | None:
    try:
        async with asyncio.timeout(timeout):
            message = await ws.receive()
    except TimeoutError:
        return None
    if message["type"] != "websocket.receive":
        raise WebSocketDisconnect(message.get("code", 1000))
    try:
        body = orjson.loads(message.get("text") or message.get("bytes") or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict) or body.get("type") != "auth":
        return None
    token = body.get("token") or (body.get("payload") or {}).get("token")
    return token if isinstance(token, str) and token else None


async def _authenticate(hub: Hub, ws: WebSocket) -> tuple[str, Principal] | None:
    token = ws.query_params.get("token") or await _first_token(ws, hub.auth_timeout)
    if not token:
        await ws.close(CLOSE_UNAUTHORIZED, "authentication required")
        return None
    try:
        principal = await principal_from_jwt(hub.runtime, token)
    except ApiError as exc:
        await ws.close(CLOSE_UNAUTHORIZED, exc.message or "unauthorized")
        return None
    except Exception:  # the cache or database is unavailable: the client retries later
        log.warning("real-time authentication failed", exc_info=True)
        await ws.close(CLOSE_RESYNC, "try again later")
        return None
    return token, principal


async def serve(hub: Hub, ws: WebSocket) -> None:
    """The whole life of one socket (the ASGI endpoint calls this)."""
    await ws.accept()
    try:
        found = await _authenticate(hub, ws)
    except WebSocketDisconnect:
        return
    if found is None:
        return
    token, principal = found
    conn = Connection(
        hub, ws, token, agent_id=principal.agent_id, workspace_id=principal.workspace_id
    )
    conn.jti = principal.jti
    conn.expires_at = principal.expires_at
    if principal.context is not None:
        conn.agent_epoch = principal.context.agent_epoch
        conn.workspace_epoch = principal.context.workspace_epoch
    conn.reader = asyncio.current_task()
    hub.add(conn)
    conn.writer = asyncio.create_task(conn.write_loop())
    conn.offer(control("ready", {"agentId": conn.agent_id, "workspaceId": conn.workspace_id}))
    try:
        conn.reading = True
        await _read_loop(hub, conn)
    except asyncio.CancelledError:
        if not conn.closing:
            raise
        # closed by the hub (a client that stopped reading): end quietly
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    finally:
        conn.reading = False
        hub.kick(conn, None, "gone")
        if conn.closer is not None:
            # returning ends the transport: let the close frame go out first
            await asyncio.shield(conn.closer)


async def _read_loop(hub: Hub, conn: Connection) -> None:
    ws = conn.ws
    while not conn.closing:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("text")
        if raw is None:
            raw = message.get("bytes") or b""
        conn.last_seen = time.monotonic()
        if len(raw) > MAX_MESSAGE:
            hub.kick(conn, CLOSE_TOO_BIG, "message too big")
            return
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            conn.offer(control("error", {"code": "BAD_REQUEST", "message": "Send JSON"}))
            continue
        if not isinstance(body, dict):
            conn.offer(control("error", {"code": "BAD_REQUEST", "message": "Send a JSON object"}))
            continue
        await handle(hub, conn, body)


def _field(body: dict[str, Any], name: str) -> Any:
    """A field of a client message, at the top level or inside `payload`."""
    if name in body:
        return body[name]
    payload = body.get("payload")
    return payload.get(name) if isinstance(payload, dict) else None


def _error(code: str, message: str, **extra: Any) -> str:
    return control("error", {"code": code, "message": message, **extra})


async def handle(hub: Hub, conn: Connection, body: dict[str, Any]) -> None:
    kind = body.get("type")
    if kind == "ping":
        if conn not in await hub.check_tokens([conn]):  # a revoked token ends here (4401)
            conn.offer(control("pong"))
    elif kind == "pong":
        return
    elif kind in ("subscribe", "unsubscribe"):
        channel = _field(body, "channel")
        if not isinstance(channel, str):
            conn.offer(_error("VALIDATION_ERROR", "channel is required"))
        elif kind == "unsubscribe":
            conn.subscriptions.discard(channel)
            conn.offer(control("unsubscribed", {"channel": channel}))
        else:
            await _subscribe(hub, conn, channel)
    elif kind == "presence":
        await _presence(hub, conn, body)
    elif kind == "auth":
        conn.offer(_error("BAD_REQUEST", "Already authenticated"))
    else:
        conn.offer(_error("BAD_REQUEST", f"Unknown message type {kind!r}"))


async def _ticket_in_workspace(hub: Hub, conn: Connection, ticket_id: str) -> bool:
    if ticket_id in conn.known_tickets:
        return True
    exists = hub.runtime.services.get("ticket_exists")
    if exists is None or not ticket_id or len(ticket_id) > 64:
        return False
    async with hub.runtime.db.session(write=False) as session:
        found = bool(await exists(session, workspace_id=conn.workspace_id, ticket_id=ticket_id))
    if found:
        conn.known_tickets.add(ticket_id)
    return found


async def _subscribe(hub: Hub, conn: Connection, channel: str) -> None:
    if channel.startswith("ticket:"):
        ticket_id = channel.removeprefix("ticket:")
        if not await _ticket_in_workspace(hub, conn, ticket_id):
            conn.offer(_error("NOT_FOUND", "Ticket not found", channel=channel))
            return
        tickets = sum(1 for c in conn.subscriptions if c.startswith("ticket:"))
        if channel not in conn.subscriptions and tickets >= MAX_TICKET_CHANNELS:
            hub.kick(conn, CLOSE_POLICY, "too many subscriptions")
            return
    elif channel not in FIXED_CHANNELS:
        conn.offer(_error("NOT_FOUND", "Unknown channel", channel=channel))
        return
    conn.subscriptions.add(channel)
    conn.offer(control("subscribed", {"channel": channel}))


async def _presence(hub: Hub, conn: Connection, body: dict[str, Any]) -> None:
    ticket_id, state = _field(body, "ticketId"), _field(body, "state")
    if state not in PRESENCE_STATES or not isinstance(ticket_id, str):
        conn.offer(_error("VALIDATION_ERROR", "presence needs ticketId and a known state"))
        return
    if state != "left" and not await _ticket_in_workspace(hub, conn, ticket_id):
        conn.offer(_error("NOT_FOUND", "Ticket not found", ticketId=ticket_id))
        return
    with contextlib.suppress(ConnectionError):
        await hub.set_presence(conn, ticket_id, state)
