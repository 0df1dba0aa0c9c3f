"""Do the ids a rule names exist in the workspace? Agents and teams are checked here; other
domains register a lookup per kind in `runtime.services["lookups"]` (kind → function)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from enque.agents.models import AgentWorkspace
from enque.automations.schemas import Reference
from enque.core.runtime import runtime_of
from enque.teams.models import Team

# (session, workspace id, ids) → the ids among them that exist in the workspace
Lookup = Callable[[AsyncSession, str, set[str]], Awaitable[set[str]]]


async def agent_ids(session: AsyncSession, workspace_id: str, ids: set[str]) -> set[str]:
    """Active members of the workspace."""
    stmt = select(AgentWorkspace.agent_id).where(
        AgentWorkspace.workspace_id == workspace_id,
        AgentWorkspace.agent_id.in_(ids),
        AgentWorkspace.is_active.is_(True),
    )
    return set((await session.execute(stmt)).scalars())


async def team_ids(session: AsyncSession, workspace_id: str, ids: set[str]) -> set[str]:
    stmt = select(Team.id).where(
        Team.workspace_id == workspace_id, Team.id.in_(ids), Team.deleted_at.is_(None)
    )
    return set((await session.execute(stmt)).scalars())


BUILT_IN: dict[str, Lookup] = {"agent": agent_ids, "team": team_ids}


async def unknown_references(
    session: AsyncSession, workspace_id: str, references: Iterable[Reference]
) -> list[dict[str, str]]:
    """A `{path, message}` for every id that names nothing in the workspace."""
    lookups = {**BUILT_IN, **runtime_of(session).services.get("lookups", {})}
    by_kind: dict[str, list[Reference]] = defaultdict(list)
    for ref in references:
        by_kind[ref.kind].append(ref)
    problems = []
    for kind, refs in by_kind.items():
        lookup = lookups.get(kind)
        found = await lookup(session, workspace_id, {r.id for r in refs}) if lookup else set()
        name = kind.replace("_", " ")
        problems += [
            {"path": r.path, "message": f"no {name} with this id in the workspace"}
            for r in refs
            if r.id not in found
        ]
    return problems
