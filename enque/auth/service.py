"""Sign-up, sign-in, sign-out and tokens."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.agents.models import Agent, AgentWorkspace
from enque.auth.deps import Principal, revoked_key
from enque.core.db import now, unit
from enque.core.errors import ApiError, conflict, unauthorized
from enque.core.runtime import runtime_of
from enque.core.security import (
    burn_password_time,
    hash_password,
    issue_token,
    needs_rehash,
    verify_password,
)
from enque.workspaces.models import Workspace

INVALID_LOGIN = "Invalid email or password"


@dataclass
class SignedIn:
    token: str
    expires_at: int
    agent: Agent
    workspace: Workspace
    role: str


def _issue(session: AsyncSession, agent: Agent, workspace: Workspace, role: str) -> SignedIn:
    settings = runtime_of(session).settings
    token, claims = issue_token(
        secret=settings.resolved_secret_key(),
        agent_id=agent.id,
        workspace_id=workspace.id,
        role=role,
        token_version=agent.token_version,
        lifetime=settings.jwt_lifetime_seconds,
        algorithm=settings.jwt_algorithm,
    )
    return SignedIn(token, claims.expires_at, agent, workspace, role)


async def find_agent_by_email(session: AsyncSession, email: str) -> Agent | None:
    stmt = select(Agent).where(func.lower(Agent.email) == email.strip().lower())
    return (await session.execute(stmt)).scalar_one_or_none()


async def create_workspace_with_admin(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    display_name: str,
    workspace_name: str,
    subdomain: str,
) -> tuple[Agent, Workspace]:
    """A new workspace whose first member is its admin (a new or existing agent)."""
    password_hash = await asyncio.to_thread(hash_password, password)
    async with unit(session):
        if (
            await session.execute(select(Workspace.id).where(Workspace.subdomain == subdomain))
        ).first():
            raise conflict("Subdomain is taken", [{"path": "subdomain", "message": "taken"}])
        if await find_agent_by_email(session, email) is not None:
            raise conflict(
                "An agent with this email exists; sign in and create the workspace from there",
                [{"path": "email", "message": "taken"}],
            )
        workspace = Workspace(name=workspace_name, subdomain=subdomain)
        agent = Agent(email=email, display_name=display_name, password_hash=password_hash)
        session.add_all([workspace, agent])
        await session.flush()
        session.add(AgentWorkspace(workspace_id=workspace.id, agent_id=agent.id, role="admin"))
        record(
            session,
            workspace_id=workspace.id,
            actor=Actor("agent", agent.id),
            verb="workspace.created",
            subject_type="workspace",
            subject_id=workspace.id,
            after={"name": workspace_name, "subdomain": subdomain},
        )
        try:
            await session.flush()
        except IntegrityError as exc:
            raise conflict("Email or subdomain is taken") from exc
    return agent, workspace


async def register(session: AsyncSession, **fields: str) -> SignedIn:
    agent, workspace = await create_workspace_with_admin(session, **fields)
    return _issue(session, agent, workspace, "admin")


async def _membership(
    session: AsyncSession, agent_id: str, workspace_id: str | None
) -> tuple[Workspace, str] | None:
    stmt = (
        select(Workspace, AgentWorkspace.role)
        .join(AgentWorkspace, AgentWorkspace.workspace_id == Workspace.id)
        .where(
            AgentWorkspace.agent_id == agent_id,
            AgentWorkspace.is_active.is_(True),
            Workspace.is_active.is_(True),
            Workspace.deleted_at.is_(None),
        )
        .order_by(AgentWorkspace.created_at, Workspace.id)
        .limit(1)
    )
    if workspace_id is not None:
        stmt = stmt.where(Workspace.id == workspace_id)
    row = (await session.execute(stmt)).first()
    return (row[0], row[1]) if row else None


async def login(
    session: AsyncSession, *, email: str, password: str, workspace_id: str | None = None
) -> SignedIn:
    """Check the password (same answer and similar time for unknown emails), then sign in."""
    agent = await find_agent_by_email(session, email)
    if agent is None or not agent.password_hash:
        await asyncio.to_thread(burn_password_time, password)
        raise unauthorized(INVALID_LOGIN)
    if not await asyncio.to_thread(verify_password, password, agent.password_hash):
        raise unauthorized(INVALID_LOGIN)
    if not agent.is_active:
        raise unauthorized(INVALID_LOGIN)
    membership = await _membership(session, agent.id, workspace_id)
    if membership is None:
        raise unauthorized(INVALID_LOGIN)
    workspace, role = membership
    new_hash = None
    if needs_rehash(agent.password_hash):
        new_hash = await asyncio.to_thread(hash_password, password)
    async with unit(session):
        if new_hash:
            agent.password_hash = new_hash
        agent.last_login_at = now()
        record(
            session,
            workspace_id=workspace.id,
            actor=Actor("agent", agent.id),
            verb="agent.login",
            subject_type="agent",
            subject_id=agent.id,
        )
    return _issue(session, agent, workspace, role)


async def logout(session: AsyncSession, principal: Principal) -> None:
    """Revoke this token until it would have expired (shared across workers with Redis)."""
    runtime = runtime_of(session)
    ttl = max(1, principal.expires_at - now())
    await runtime.cache.set(revoked_key(principal.jti), "1", ttl)


async def switch_workspace(
    session: AsyncSession, principal: Principal, workspace_id: str
) -> SignedIn:
    agent = await session.get(Agent, principal.agent_id)
    membership = await _membership(session, principal.agent_id, workspace_id)
    if agent is None or membership is None:
        raise ApiError("NOT_FOUND", "Workspace not found")
    workspace, role = membership
    return _issue(session, agent, workspace, role)


async def me(session: AsyncSession, principal: Principal) -> tuple[Agent, Workspace, str]:
    row = (
        await session.execute(
            select(Agent, Workspace)
            .join(AgentWorkspace, AgentWorkspace.agent_id == Agent.id)
            .join(Workspace, Workspace.id == AgentWorkspace.workspace_id)
            .where(Agent.id == principal.agent_id, Workspace.id == principal.workspace_id)
        )
    ).first()
    if row is None:
        raise unauthorized()
    return row[0], row[1], principal.role
