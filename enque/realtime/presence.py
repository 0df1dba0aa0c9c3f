"""Who is on a ticket right now: one entry per socket and ticket, shared by every worker.

Each entry carries its own deadline. A live socket renews its entries at every ping; a socket
that closes removes them; a worker that dies leaves them to expire (`PresenceStore.ttl`).
Embedded mode keeps them in the process; with Redis they live in one hash per ticket, so
`GET /v1/tickets/{id}/viewers` answers the same on every worker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from enque.core.cache import Cache, RedisCache

if TYPE_CHECKING:
    import redis.asyncio as aioredis

STATES = ("viewing", "typing")
RANK = {"viewing": 1, "typing": 2}


@dataclass(frozen=True)
class Mark:
    """One socket's presence on one ticket."""

    workspace_id: str
    ticket_id: str
    connection_id: str
    agent_id: str
    state: str
    since: int


def aggregate(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per agent (several tabs: typing wins, `since` is the earliest), oldest first."""
    agents: dict[str, dict[str, Any]] = {}
    for entry in entries:
        seen = agents.get(entry["agentId"])
        if seen is None:
            agents[entry["agentId"]] = dict(entry)
            continue
        if RANK.get(entry["state"], 0) > RANK.get(seen["state"], 0):
            seen["state"] = entry["state"]
        seen["since"] = min(seen["since"], entry["since"])
    return sorted(agents.values(), key=lambda e: (e["since"], e["agentId"]))


class PresenceStore(Protocol):
    ttl: int

    async def put(self, marks: list[Mark]) -> None: ...
    async def remove(self, workspace_id: str, ticket_id: str, connection_id: str) -> None: ...
    async def viewers(self, workspace_id: str, ticket_id: str) -> list[dict[str, Any]]: ...


def _entry(mark: Mark, deadline: float) -> dict[str, Any]:
    return {"agentId": mark.agent_id, "state": mark.state, "since": mark.since, "until": deadline}


def _public(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return aggregate([{k: v for k, v in e.items() if k != "until"} for e in entries])


class MemoryPresence:
    """Presence of one process (embedded mode)."""

    def __init__(self, ttl: int) -> None:
        self.ttl = ttl
        self._tickets: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}

    async def put(self, marks: list[Mark]) -> None:
        deadline = time.time() + self.ttl
        for mark in marks:
            key = (mark.workspace_id, mark.ticket_id)
            self._tickets.setdefault(key, {})[mark.connection_id] = _entry(mark, deadline)

    async def remove(self, workspace_id: str, ticket_id: str, connection_id: str) -> None:
        entries = self._tickets.get((workspace_id, ticket_id))
        if entries is not None:
            entries.pop(connection_id, None)
            if not entries:
                del self._tickets[(workspace_id, ticket_id)]

    async def viewers(self, workspace_id: str, ticket_id: str) -> list[dict[str, Any]]:
        entries = self._tickets.get((workspace_id, ticket_id), {})
        moment = time.time()
        for connection_id in [c for c, e in entries.items() if e["until"] <= moment]:
            del entries[connection_id]
        return _public(list(entries.values()))


class RedisPresence:
    """A hash per ticket (`presence:<workspace>:<ticket>`), field = socket, value = entry."""

    def __init__(self, client: aioredis.Redis, prefix: str, ttl: int) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl

    def _key(self, workspace_id: str, ticket_id: str) -> str:
        return f"{self.prefix}presence:{workspace_id}:{ticket_id}"

    async def put(self, marks: list[Mark]) -> None:
        if not marks:
            return
        deadline = time.time() + self.ttl
        async with self.client.pipeline(transaction=False) as pipe:
            for mark in marks:
                key = self._key(mark.workspace_id, mark.ticket_id)
                pipe.hset(key, mark.connection_id, orjson.dumps(_entry(mark, deadline)))
                pipe.expire(key, self.ttl)
            await pipe.execute()

    async def remove(self, workspace_id: str, ticket_id: str, connection_id: str) -> None:
        await self.client.hdel(self._key(workspace_id, ticket_id), connection_id)

    async def viewers(self, workspace_id: str, ticket_id: str) -> list[dict[str, Any]]:
        key = self._key(workspace_id, ticket_id)
        raw = await self.client.hgetall(key)
        moment = time.time()
        live: list[tuple[str, dict[str, Any]]] = []
        stale: list[tuple[str, dict[str, Any]]] = []
        for field, value in raw.items():
            entry = orjson.loads(value)
            (live if entry["until"] > moment else stale).append((str(field), entry))
        if stale:
            await self.client.hdel(key, *(field for field, _ in stale))
        return _public([entry for _, entry in live])


def make_presence(cache: Cache, prefix: str, ttl: int) -> PresenceStore:
    if isinstance(cache, RedisCache):
        return RedisPresence(cache.client, prefix, ttl)
    return MemoryPresence(ttl)
