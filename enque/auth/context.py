"""The signed-in context of an (agent, workspace) pair, cached so a request needs no query.

The context (role, token version, the agent and workspace as the API shows them) is cached
with the epochs of the agent and of the workspace. Any committed change to an agent, a
membership or a workspace bumps the epochs (an ORM flush listener sees every such change), so a
cached context older than a change is never used: deactivation, role changes, password changes
and workspace deletion take effect on the very next request, on every worker when Redis is on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from itertools import chain
from typing import Any

import orjson
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from enque.agents.models import Agent, AgentWorkspace
from enque.agents.schemas import AgentOut
from enque.core.cache import Cache
from enque.core.db import on_commit
from enque.core.errors import unauthorized
from enque.core.runtime import Runtime
from enque.workspaces.models import Workspace
from enque.workspaces.schemas import WorkspaceOut

log = logging.getLogger(__name__)

CONTEXT_TTL = 300
EPOCH_TTL = 40 * 24 * 3600  # longer than any token lives

_QUERY = (
    select(Agent, AgentWorkspace.role, AgentWorkspace.is_active, Workspace)
    .join(AgentWorkspace, AgentWorkspace.agent_id == Agent.id)
    .join(Workspace, Workspace.id == AgentWorkspace.workspace_id)
)


@dataclass(frozen=True)
class AuthContext:
    agent_id: str
    workspace_id: str
    role: str
    token_version: int
    agent: dict[str, Any]
    workspace: dict[str, Any]
    agent_epoch: int
    workspace_epoch: int


def revoked_key(jti: str) -> str:
    return f"revoked:{jti}"


def _context_key(agent_id: str, workspace_id: str) -> str:
    return f"authctx:{agent_id}:{workspace_id}"


def _agent_epoch(agent_id: str) -> str:
    return f"epoch:agent:{agent_id}"


def _workspace_epoch(workspace_id: str) -> str:
    return f"epoch:ws:{workspace_id}"


def validity_keys(agent_id: str, workspace_id: str, jti: str) -> tuple[str, str, str]:
    """The cache keys whose change may end a token: its revocation and the two epochs.

    A long-lived holder of a checked token (a WebSocket) reads them to see, in one round trip,
    whether the token must be checked again.
    """
    return revoked_key(jti), _agent_epoch(agent_id), _workspace_epoch(workspace_id)


async def load_context(
    runtime: Runtime,
    *,
    agent_id: str,
    workspace_id: str,
    jti: str,
    session: AsyncSession | None = None,
) -> AuthContext:
    """The live context of a token's agent and workspace, or UNAUTHORIZED.

    A cache hit needs no database connection at all; a miss reads one row, on `session` when
    the caller holds one (a task never asks the pool for a second connection).
    """
    cache = runtime.cache
    revoked, blob, agent_epoch, workspace_epoch = await cache.get_many(
        revoked_key(jti),
        _context_key(agent_id, workspace_id),
        _agent_epoch(agent_id),
        _workspace_epoch(workspace_id),
    )
    if revoked is not None:
        raise unauthorized("Token has been revoked")
    epochs = (int(agent_epoch or 0), int(workspace_epoch or 0))
    if blob is not None:
        cached = AuthContext(**orjson.loads(blob))
        if (cached.agent_epoch, cached.workspace_epoch) == epochs:
            return cached
    async with runtime.db.reading(session) as reader:
        query = _QUERY.where(Agent.id == agent_id, Workspace.id == workspace_id)
        row = (await reader.execute(query)).first()
    if row is None:
        raise unauthorized("Invalid token")
    agent, role, member_active, workspace = row
    if not agent.is_active or not member_active:
        raise unauthorized("Agent is deactivated")
    if not workspace.is_active or workspace.deleted_at is not None:
        raise unauthorized("Workspace no longer exists")
    context = AuthContext(
        agent_id=agent_id,
        workspace_id=workspace_id,
        role=role,
        token_version=agent.token_version,
        agent=AgentOut.model_validate(agent)
        .model_copy(update={"role": role})
        .model_dump(by_alias=True, mode="json"),
        workspace=WorkspaceOut.model_validate(workspace).model_dump(by_alias=True, mode="json"),
        agent_epoch=epochs[0],
        workspace_epoch=epochs[1],
    )
    await cache.set(
        _context_key(agent_id, workspace_id), orjson.dumps(asdict(context)).decode(), CONTEXT_TTL
    )
    return context


async def bump_epochs(cache: Cache, agent_ids: set[str], workspace_ids: set[str]) -> None:
    for agent_id in agent_ids:
        await cache.incr(_agent_epoch(agent_id), EPOCH_TTL)
    for workspace_id in workspace_ids:
        await cache.incr(_workspace_epoch(workspace_id), EPOCH_TTL)


# ---------------------------------------------------------------- invalidation


def _changed(session: Session) -> tuple[set[str], set[str]]:
    agents: set[str] = set()
    workspaces: set[str] = set()
    for obj in chain(session.new, session.dirty, session.deleted):
        if isinstance(obj, Agent):
            agents.add(obj.id)
        elif isinstance(obj, AgentWorkspace):
            agents.add(obj.agent_id)
        elif isinstance(obj, Workspace):
            workspaces.add(obj.id)
    return agents, workspaces


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context: Any) -> None:
    agents, workspaces = _changed(session)
    if not agents and not workspaces:
        return
    pending = session.info.setdefault("auth_changed", (set(), set()))
    pending[0].update(agents)
    pending[1].update(workspaces)
    runtime = session.info.get("runtime")
    if runtime is None or session.info.get("auth_hook"):
        return
    session.info["auth_hook"] = True

    async def bump() -> None:
        changed = session.info.pop("auth_changed", (set(), set()))
        session.info.pop("auth_hook", None)
        await bump_epochs(runtime.cache, *changed)

    on_commit(session, bump)  # type: ignore[arg-type]  # AsyncSession.info is this same dict


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    """Commits outside a unit of work (no after-commit hooks) still invalidate, just after."""
    if session.info.get("unit_depth", 0) > 0 or "auth_changed" not in session.info:
        return
    changed = session.info.pop("auth_changed")
    session.info.pop("auth_hook", None)
    runtime = session.info.get("runtime")
    if runtime is not None:
        asyncio.get_running_loop().create_task(bump_epochs(runtime.cache, *changed))


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop("auth_changed", None)
    session.info.pop("auth_hook", None)
