"""Per-workspace facts kept in the process between events, renewed on any committed change.

Reactions run after every commit; most have nothing to do in most workspaces (no webhook, no
SLA policy, CSAT off). A `TenantFacts` answers such a question without a query while nothing
changed: its value for a workspace is loaded once and kept under the workspace's token in the
shared cache (Redis when `REDIS_URL` is set, so every worker sees it).

A fact names the tables it is read from (and which kinds of row change matter). Any ORM flush
of such a row marks its workspace; once that transaction commits, this process drops its
entry at once and the token is replaced before the commit's events reach any reaction, so
every worker reloads on its next read. The token is read before the value, so an entry never
outlives a change it did not see. Writes that bypass the ORM are seen within `ENTRY_TTL`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from enque.core.cache import Cache
from enque.core.db import new_id, on_commit
from enque.core.runtime import Runtime

T = TypeVar("T")

ENTRY_TTL = 60
TOKEN_TTL = 30 * 24 * 3600  # an expired token only costs one reload
MAX_ENTRIES = 4096
SERVICE = "tenant_facts"
PENDING = "tenant_facts_changed"
CHANGES = frozenset({"new", "dirty", "deleted"})

Loader = Callable[[AsyncSession, str], Awaitable[T]]

_WATCHED: dict[type, list[tuple[str, frozenset[str]]]] = {}  # model → (fact, kinds of change)


def token_key(name: str, workspace_id: str) -> str:
    return f"facts:{name}:{workspace_id}"


class TenantFacts(Generic[T]):
    """One question about a workspace, answered by `load` and kept until its tables change.

    `watch` maps each model the answer is read from to the row changes that may change it
    (`new`, `dirty`, `deleted`); the models must carry `workspace_id`.
    """

    def __init__(self, name: str, load: Loader[T], watch: Mapping[type, Collection[str]]) -> None:
        self.name = name
        self.load = load
        for model, kinds in watch.items():
            _WATCHED.setdefault(model, []).append((name, frozenset(kinds) & CHANGES))

    def _entries(self, runtime: Runtime) -> OrderedDict[str, tuple[str | None, float, T]]:
        kept: dict[str, OrderedDict[str, Any]] = runtime.services.setdefault(SERVICE, {})
        return kept.setdefault(self.name, OrderedDict())

    async def get(
        self, runtime: Runtime, workspace_id: str, session: AsyncSession | None = None
    ) -> T:
        """The kept value, or a fresh one read on `session` (a task that holds a session must
        not ask the pool for a second connection) or on a session of its own."""
        token = await runtime.cache.get(token_key(self.name, workspace_id))
        entries = self._entries(runtime)
        entry = entries.get(workspace_id)
        if entry is not None and entry[0] == token and time.monotonic() - entry[1] < ENTRY_TTL:
            entries.move_to_end(workspace_id)
            return entry[2]
        async with runtime.db.reading(session) as reader:
            value = await self.load(reader, workspace_id)
        entries[workspace_id] = (token, time.monotonic(), value)
        entries.move_to_end(workspace_id)
        while len(entries) > MAX_ENTRIES:
            entries.popitem(last=False)
        return value

    async def within(self, session: AsyncSession, workspace_id: str) -> T:
        """As `get`, from inside a unit of work: one that has changed the fact's tables in this
        workspace (not yet committed) reads the fact itself, seeing its own change."""
        runtime: Runtime | None = session.info.get("runtime")
        changed: dict[str, set[str]] = session.info.get(PENDING, {})
        if runtime is None or workspace_id in changed.get(self.name, ()):
            return await self.load(session, workspace_id)
        return await self.get(runtime, workspace_id, session)


async def facts_changed(cache: Cache, changed: Mapping[str, Collection[str]]) -> None:
    """Every worker's kept facts of these (fact, workspaces) are stale from now on."""
    for name, workspace_ids in changed.items():
        for workspace_id in workspace_ids:
            await cache.set(token_key(name, workspace_id), new_id(), TOKEN_TTL)


def _forget(runtime: Runtime, changed: Mapping[str, Collection[str]]) -> None:
    kept: dict[str, OrderedDict[str, Any]] = runtime.services.get(SERVICE, {})
    for name, workspace_ids in changed.items():
        entries = kept.get(name)
        if entries is not None:
            for workspace_id in workspace_ids:
                entries.pop(workspace_id, None)


# ---------------------------------------------------------------- invalidation


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context: Any) -> None:
    changes = (("new", session.new), ("dirty", session.dirty), ("deleted", session.deleted))
    for kind, rows in changes:
        for obj in rows:
            for name, kinds in _WATCHED.get(type(obj), ()):
                if kind in kinds:
                    pending: dict[str, set[str]] = session.info.setdefault(PENDING, {})
                    pending.setdefault(name, set()).add(obj.workspace_id)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    """Drop this process's entries now; replace the shared tokens before the commit's other
    after-commit hooks (its events) run, or just after a commit outside a unit of work."""
    changed: dict[str, set[str]] | None = session.info.pop(PENDING, None)
    runtime: Runtime | None = session.info.get("runtime")
    if not changed or runtime is None:
        return
    _forget(runtime, changed)
    if session.info.get("unit_depth", 0) > 0:

        async def announce() -> None:
            await facts_changed(runtime.cache, changed)

        on_commit(session, announce, first=True)  # type: ignore[arg-type]  # AsyncSession.info
    else:
        asyncio.get_running_loop().create_task(facts_changed(runtime.cache, changed))


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(PENDING, None)
