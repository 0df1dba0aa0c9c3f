"""Sign-up, sign-in, sign-out and tokens."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.agents.models import Agent, AgentWorkspace, PasswordReset
from enque.auth.context import revoked_key
from enque.auth.deps import Principal
from enque.core.db import now, unit
from enque.core.errors import ApiError, conflict, unauthorized
from enque.core.mail import password_reset_mail, send_after_commit
from enque.core.runtime import runtime_of
from enque.core.security import (
    burn_password_time,
    hash_password,
    issue_token,
    needs_rehash,
    new_token,
    token_hash,
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


def issue_session(session: AsyncSession, agent: Agent, workspace: Workspace, role: str) -> SignedIn:
    """A JWT for `agent` in `workspace` with `role` (carries the agent's token version)."""
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
    return issue_session(session, agent, workspace, "admin")


async def live_membership(
    session: AsyncSession, agent_id: str, workspace_id: str | None
) -> tuple[Workspace, str] | None:
    """The agent's active membership of a live workspace (`workspace_id`, else the oldest)."""
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
    membership = None
    if agent is not None and agent.is_active:
        membership = await live_membership(session, agent.id, workspace_id)
    await session.commit()  # end the read: no database lock is held while hashing
    if agent is None or not agent.password_hash:
        await asyncio.to_thread(burn_password_time, password)
        raise unauthorized(INVALID_LOGIN)
    if not await asyncio.to_thread(verify_password, password, agent.password_hash):
        raise unauthorized(INVALID_LOGIN)
    if membership is None:
        raise unauthorized(INVALID_LOGIN)
    workspace, role = membership
    new_hash = None
    if needs_rehash(agent.password_hash):
        new_hash = await asyncio.to_thread(hash_password, password)
    async with unit(session):
        if new_hash:
            agent.password_hash = new_hash
        return complete_sign_in(session, agent, workspace, role, method="password")


def complete_sign_in(
    session: AsyncSession, agent: Agent, workspace: Workspace, role: str, *, method: str
) -> SignedIn:
    """Record the sign-in (inside the caller's unit) and issue the session token."""
    agent.last_login_at = now()
    record(
        session,
        workspace_id=workspace.id,
        actor=Actor("agent", agent.id),
        verb="agent.login",
        subject_type="agent",
        subject_id=agent.id,
        after={"method": method},
    )
    return issue_session(session, agent, workspace, role)


async def logout(session: AsyncSession, principal: Principal) -> None:
    """Revoke this token until it would have expired (shared across workers with Redis)."""
    runtime = runtime_of(session)
    ttl = max(1, principal.expires_at - now())
    await runtime.cache.set(revoked_key(principal.jti), "1", ttl)


async def switch_workspace(
    session: AsyncSession, principal: Principal, workspace_id: str
) -> SignedIn:
    agent = await session.get(Agent, principal.agent_id)
    membership = await live_membership(session, principal.agent_id, workspace_id)
    if agent is None or membership is None:
        raise ApiError("NOT_FOUND", "Workspace not found")
    workspace, role = membership
    return issue_session(session, agent, workspace, role)


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


# ---------------------------------------------------------------- password reset

INVALID_RESET = "The reset link is invalid, expired or already used"


async def _live_workspace_ids(session: AsyncSession, agent_id: str) -> list[str]:
    """The workspaces where the agent is an active member (for the audit rows)."""
    stmt = (
        select(Workspace.id)
        .join(AgentWorkspace, AgentWorkspace.workspace_id == Workspace.id)
        .where(
            AgentWorkspace.agent_id == agent_id,
            AgentWorkspace.is_active.is_(True),
            Workspace.deleted_at.is_(None),
        )
        .order_by(Workspace.id)
    )
    return list((await session.execute(stmt)).scalars().all())


async def request_password_reset(session: AsyncSession, *, email: str) -> None:
    """Mail a single-use reset link to an active agent; silently nothing for anyone else."""
    agent = await find_agent_by_email(session, email)
    workspace_ids = await _live_workspace_ids(session, agent.id) if agent else []
    if agent is None or not agent.is_active or not workspace_ids:
        await session.commit()
        return
    settings = runtime_of(session).settings
    token = new_token()
    async with unit(session):
        reset = PasswordReset(
            agent_id=agent.id,
            token_hash=token_hash(token),
            expires_at=now() + settings.password_reset_ttl_seconds,
        )
        session.add(reset)
        for workspace_id in workspace_ids:
            record(
                session,
                workspace_id=workspace_id,
                actor=Actor("agent", agent.id),
                verb="agent.password_reset_requested",
                subject_type="agent",
                subject_id=agent.id,
            )
        send_after_commit(
            session,
            password_reset_mail(settings, to=agent.email, name=agent.display_name, token=token),
        )


async def reset_password(session: AsyncSession, *, token: str, password: str) -> None:
    """Set a new password with a reset token: single use, before expiry; revokes all tokens."""
    invalid = ApiError("BAD_REQUEST", INVALID_RESET, [{"path": "token", "message": "invalid"}])
    digest = token_hash(token)
    found = (
        await session.execute(select(PasswordReset.id).where(PasswordReset.token_hash == digest))
    ).first()
    await session.commit()
    if found is None:
        raise invalid
    password_hash = await asyncio.to_thread(hash_password, password)
    async with unit(session):
        moment = now()
        claimed = await session.execute(
            update(PasswordReset)
            .where(
                PasswordReset.id == found[0],
                PasswordReset.used_at.is_(None),
                PasswordReset.expires_at > moment,
            )
            .values(used_at=moment)
            .returning(PasswordReset.agent_id)
        )
        agent_id = claimed.scalar_one_or_none()
        agent = await session.get(Agent, agent_id) if agent_id else None
        if agent is None or not agent.is_active:
            raise invalid
        agent.password_hash = password_hash
        agent.token_version += 1
        if agent.auth_method == "microsoft":
            agent.auth_method = "both"
        await session.execute(
            update(PasswordReset)
            .where(PasswordReset.agent_id == agent.id, PasswordReset.used_at.is_(None))
            .values(used_at=moment)
        )
        for workspace_id in await _live_workspace_ids(session, agent.id):
            record(
                session,
                workspace_id=workspace_id,
                actor=Actor("agent", agent.id),
                verb="agent.password_reset",
                subject_type="agent",
                subject_id=agent.id,
            )
