"""The active rules of a workspace's trigger, kept in the process between events.

Each workspace has a rules token in the shared cache (Redis when `REDIS_URL` is set, so every
worker sees it). Any committed change to a rule (an ORM flush of an `Automation`: create,
change, reorder, delete) replaces the token, and a kept entry is used only while the token it
was loaded under is current: the next event on any worker runs the changed rules. The token is
read before the rules, so an entry never outlives a change it did not see. Writes that bypass
the ORM (a legacy import into a running system) are seen within `ENTRY_TTL` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from itertools import chain
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from enque.automations import engine
from enque.automations.models import Automation
from enque.automations.service import active_rules
from enque.core.cache import Cache
from enque.core.db import new_id, on_commit
from enque.core.runtime import Runtime

ENTRY_TTL = 60
TOKEN_TTL = 30 * 24 * 3600  # an expired token only costs one reload
MAX_ENTRIES = 4096
SERVICE = "automation_rules"
PENDING = "automation_rules_changed"
HOOKED = "automation_rules_hook"

Entry = tuple[str | None, float, tuple[engine.Rule, ...]]  # token, loaded at, rules


def token_key(workspace_id: str) -> str:
    return f"automations:rules:{workspace_id}"


class RuleCache:
    """(workspace, trigger) → rules in run order, for one process (least recently used out)."""

    def __init__(self, size: int = MAX_ENTRIES) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, str], Entry] = OrderedDict()

    async def kept(
        self, runtime: Runtime, *, workspace_id: str, trigger: str
    ) -> tuple[engine.Rule, ...] | None:
        """The rules kept for (workspace, trigger) while still current; None when they must
        be read (`rules`)."""
        token = await runtime.cache.get(token_key(workspace_id))
        return self._current((workspace_id, trigger), token)

    def _current(self, key: tuple[str, str], token: str | None) -> tuple[engine.Rule, ...] | None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] == token and time.monotonic() - entry[1] < ENTRY_TTL:
            self._entries.move_to_end(key)
            return entry[2]
        return None

    async def rules(
        self, runtime: Runtime, session: AsyncSession, *, workspace_id: str, trigger: str
    ) -> tuple[engine.Rule, ...]:
        token = await runtime.cache.get(token_key(workspace_id))
        key = (workspace_id, trigger)
        current = self._current(key, token)
        if current is not None:
            return current
        rows = await active_rules(session, workspace_id=workspace_id, trigger=trigger)
        rules = tuple(engine.Rule.of(row) for row in rows)
        self._entries[key] = (token, time.monotonic(), rules)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return rules


def rule_cache(runtime: Runtime) -> RuleCache:
    cache: RuleCache = runtime.services.setdefault(SERVICE, RuleCache())
    return cache


async def rules_changed(cache: Cache, workspace_ids: set[str]) -> None:
    """Every worker's kept rules of these workspaces are stale from now on."""
    for workspace_id in workspace_ids:
        await cache.set(token_key(workspace_id), new_id(), TOKEN_TTL)


# ---------------------------------------------------------------- invalidation


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context: Any) -> None:
    changed = {
        obj.workspace_id
        for obj in chain(session.new, session.dirty, session.deleted)
        if isinstance(obj, Automation)
    }
    if not changed:
        return
    session.info.setdefault(PENDING, set()).update(changed)
    runtime = session.info.get("runtime")
    if runtime is None or session.info.get("unit_depth", 0) == 0 or session.info.get(HOOKED):
        return  # outside a unit of work `_after_commit` announces; inside, one hook does
    session.info[HOOKED] = True

    async def announce() -> None:
        session.info.pop(HOOKED, None)
        await rules_changed(runtime.cache, session.info.pop(PENDING, set()))

    on_commit(session, announce)  # type: ignore[arg-type]  # AsyncSession.info is this dict


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    """Commits outside a unit of work (no after-commit hooks) still announce, just after."""
    if session.info.get("unit_depth", 0) > 0 or PENDING not in session.info:
        return
    changed = session.info.pop(PENDING)
    runtime = session.info.get("runtime")
    if runtime is not None:
        asyncio.get_running_loop().create_task(rules_changed(runtime.cache, changed))


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(PENDING, None)
    session.info.pop(HOOKED, None)
