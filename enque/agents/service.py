"""Agents of a workspace: listing, role and profile changes, deactivation, admins from the CLI."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import SYSTEM, Actor, record
from enque.agents.models import Agent, AgentWorkspace
from enque.agents.sanitize import sanitize_signature
from enque.auth.deps import Principal
from enque.auth.service import SignedIn, find_agent_by_email, issue_session
from enque.core.api import PageParams
from enque.core.db import unit
from enque.core.errors import ApiError, conflict, forbidden, not_found, validation_error
from enque.core.pagination import Page, SortKey, keyset_page
from enque.core.security import hash_password, verify_password
from enque.notifications import service as notification_settings
from enque.notifications.schemas import SettingIn
from enque.workspaces.models import Workspace

PROFILE_FIELDS = frozenset({"display_name", "job_title", "phone"})
ADMIN_FIELDS = frozenset({"role", "is_active"})


@dataclass
class Member:
    """An agent with its membership of one workspace."""

    agent: Agent
    membership: AgentWorkspace

    @property
    def role(self) -> str:
        return self.membership.role

    @property
    def is_active(self) -> bool:
        return self.agent.is_active and self.membership.is_active


def like_pattern(text: str) -> str:
    """`%text%` for LIKE with `\\` as the escape character, matched case-insensitively."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _members(workspace_id: str) -> Select[Any]:
    return (
        select(Agent, AgentWorkspace)
        .join(AgentWorkspace, AgentWorkspace.agent_id == Agent.id)
        .where(AgentWorkspace.workspace_id == workspace_id)
    )


async def get_member(
    session: AsyncSession, *, workspace_id: str, agent_id: str, for_update: bool = False
) -> Member:
    stmt = _members(workspace_id).where(Agent.id == agent_id)
    if for_update:
        stmt = stmt.with_for_update(of=AgentWorkspace)
    row = (await session.execute(stmt)).first()
    if row is None:
        raise not_found("Agent")
    return Member(row[0], row[1])


async def list_agents(
    session: AsyncSession,
    *,
    workspace_id: str,
    page: PageParams,
    q: str | None = None,
    role: str | None = None,
    is_active: bool | None = None,
) -> Page[Member]:
    """The workspace's agents by name, filtered by text (name or email), role and state."""
    sort_name = func.lower(Agent.display_name)
    stmt = _members(workspace_id).add_columns(sort_name.label("sort_name"))
    if q:
        pattern = like_pattern(q)
        stmt = stmt.where(
            or_(
                func.lower(Agent.display_name).like(pattern, escape="\\"),
                func.lower(Agent.email).like(pattern, escape="\\"),
            )
        )
    if role:
        stmt = stmt.where(AgentWorkspace.role == role)
    if is_active is not None:
        active: ColumnElement[bool] = Agent.is_active.is_(True) & AgentWorkspace.is_active.is_(True)
        stmt = stmt.where(active if is_active else ~active)
    result = await keyset_page(
        session,
        stmt,
        [SortKey(sort_name), SortKey(Agent.id)],
        page,
        key_of=lambda row: (row.sort_name, row[0].id),
        scalars=False,
    )
    return Page([Member(r[0], r[1]) for r in result.items], result.next_cursor, result.total)


async def _lock_active_admins(session: AsyncSession, workspace_id: str) -> list[str]:
    """Ids of the workspace's active admins, their memberships locked (PostgreSQL)."""
    stmt = (
        select(AgentWorkspace.agent_id)
        .join(Agent, Agent.id == AgentWorkspace.agent_id)
        .where(
            AgentWorkspace.workspace_id == workspace_id,
            AgentWorkspace.role == "admin",
            AgentWorkspace.is_active.is_(True),
            Agent.is_active.is_(True),
        )
        .order_by(AgentWorkspace.id)
        .with_for_update(of=AgentWorkspace)
    )
    return list((await session.execute(stmt)).scalars().all())


async def update_agent(
    session: AsyncSession,
    *,
    workspace_id: str,
    by: Principal,
    agent_id: str,
    changes: dict[str, Any],
) -> Member:
    """Change role, state or profile fields; admins only, except an agent's own profile.

    The last active admin of a workspace can be neither demoted nor deactivated.
    """
    async with unit(session):
        admin_change = bool(ADMIN_FIELDS & changes.keys())
        admins = await _lock_active_admins(session, workspace_id) if admin_change else []
        member = await get_member(
            session, workspace_id=workspace_id, agent_id=agent_id, for_update=True
        )
        if not by.is_admin and (agent_id != by.agent_id or admin_change):
            raise forbidden("Only an admin may change other agents, roles and access")
        loses_admin = agent_id in admins and (
            changes.get("role", "admin") != "admin" or changes.get("is_active") is False
        )
        if loses_admin and len(admins) == 1:
            raise conflict("A workspace needs at least one active admin")
        actor = Actor("agent", by.agent_id)
        _apply_membership(session, member, changes, workspace_id=workspace_id, actor=actor)
        _apply_profile(session, member.agent, changes, workspace_id=workspace_id, actor=actor)
    return member


def _apply_membership(
    session: AsyncSession,
    member: Member,
    changes: dict[str, Any],
    *,
    workspace_id: str,
    actor: Actor,
) -> None:
    membership, agent = member.membership, member.agent
    role = changes.get("role")
    if role is not None and role != membership.role:
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="agent.role_changed",
            subject_type="agent",
            subject_id=agent.id,
            before={"role": membership.role},
            after={"role": role},
        )
        membership.role = role
    active = changes.get("is_active")
    if active is not None and active != membership.is_active:
        membership.is_active = active
        if not active:
            agent.token_version += 1  # every token of this agent stops working now
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="agent.reactivated" if active else "agent.deactivated",
            subject_type="agent",
            subject_id=agent.id,
        )


def _apply_profile(
    session: AsyncSession,
    agent: Agent,
    changes: dict[str, Any],
    *,
    workspace_id: str,
    actor: Actor,
    fields: frozenset[str] = PROFILE_FIELDS,
) -> None:
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for field in sorted(fields & changes.keys()):
        value = changes[field]
        if getattr(agent, field) != value:
            before[field] = getattr(agent, field)
            after[field] = value
            setattr(agent, field, value)
    if after:
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="agent.updated",
            subject_type="agent",
            subject_id=agent.id,
            before=before,
            after=after,
        )


async def deactivate_agent(
    session: AsyncSession, *, workspace_id: str, by: Principal, agent_id: str
) -> None:
    """End the agent's access to this workspace; its tickets and history stay as they are."""
    await update_agent(
        session,
        workspace_id=workspace_id,
        by=by,
        agent_id=agent_id,
        changes={"is_active": False},
    )


# ---------------------------------------------------------------- profile


async def get_profile(session: AsyncSession, *, principal: Principal) -> Member:
    return await get_member(
        session, workspace_id=principal.workspace_id, agent_id=principal.agent_id
    )


async def update_profile(
    session: AsyncSession,
    *,
    principal: Principal,
    changes: dict[str, Any],
    notifications: Sequence[SettingIn] | None = None,
) -> tuple[Member, SignedIn | None]:
    """Change the caller's own profile and notification choices; a new password needs the
    current one.

    A password change revokes every token of the agent and returns a fresh one.
    """
    new_password = changes.pop("password", None)
    current = changes.pop("current_password", None)
    member = await get_profile(session, principal=principal)
    new_hash = None
    if new_password is not None:
        stored = member.agent.password_hash
        await session.commit()  # no database lock is held while hashing
        if current is None:
            raise validation_error("currentPassword", "required to change the password")
        if not await asyncio.to_thread(verify_password, current, stored):
            raise validation_error("currentPassword", "incorrect password")
        new_hash = await asyncio.to_thread(hash_password, new_password)
    if "signature" in changes and changes["signature"] is not None:
        changes["signature"] = sanitize_signature(changes["signature"])
    actor = Actor("agent", principal.agent_id)
    async with unit(session):
        agent = member.agent
        await session.refresh(agent)
        _apply_profile(
            session,
            agent,
            changes,
            workspace_id=principal.workspace_id,
            actor=actor,
            fields=PROFILE_FIELDS | {"avatar_url", "signature"},
        )
        if notifications:
            await notification_settings.update_settings(
                session,
                workspace_id=principal.workspace_id,
                agent_id=principal.agent_id,
                changes=notifications,
            )
        if new_hash is None:
            return member, None
        agent.password_hash = new_hash
        agent.token_version += 1
        if agent.auth_method == "microsoft":
            agent.auth_method = "both"
        record(
            session,
            workspace_id=principal.workspace_id,
            actor=actor,
            verb="agent.password_changed",
            subject_type="agent",
            subject_id=agent.id,
        )
        workspace = await session.get(Workspace, principal.workspace_id)
    assert workspace is not None
    return member, issue_session(session, agent, workspace, member.role)


# ---------------------------------------------------------------- admins from the CLI


async def add_admin(
    session: AsyncSession, *, workspace_id: str, email: str, password: str, display_name: str
) -> Agent:
    """Make `email` an admin of an existing workspace (operator's command line).

    A new agent gets `password`; an existing one must prove it with its own password, and
    is promoted if it is already a member.
    """
    workspace = await session.get(Workspace, workspace_id)
    agent = await find_agent_by_email(session, email)
    await session.commit()
    if workspace is None or workspace.deleted_at is not None:
        raise not_found("Workspace")
    if agent is not None:
        if not await asyncio.to_thread(verify_password, password, agent.password_hash):
            raise ApiError("UNAUTHORIZED", "An agent with this email exists; wrong password")
        password_hash = None
    else:
        password_hash = await asyncio.to_thread(hash_password, password)
    async with unit(session):
        if agent is None:
            agent = Agent(email=email, display_name=display_name, password_hash=password_hash)
            session.add(agent)
            try:
                await session.flush()
            except IntegrityError as exc:
                raise conflict("An agent with this email exists") from exc
        membership = (
            await session.execute(
                select(AgentWorkspace).where(
                    AgentWorkspace.workspace_id == workspace_id,
                    AgentWorkspace.agent_id == agent.id,
                    AgentWorkspace.is_active.is_(True),
                )
            )
        ).scalar_one_or_none()
        if membership is None:
            await join_workspace(
                session, workspace_id=workspace_id, agent=agent, role="admin", actor=SYSTEM
            )
        elif membership.role == "admin":
            raise conflict("This agent is already an admin of the workspace")
        else:
            _apply_membership(
                session, Member(agent, membership), {"role": "admin"},
                workspace_id=workspace_id, actor=SYSTEM,
            )  # fmt: skip
    return agent


async def join_workspace(
    session: AsyncSession, *, workspace_id: str, agent: Agent, role: str, actor: Actor
) -> AgentWorkspace:
    """Add (or re-activate) the agent's membership with `role`; refuses active members."""
    membership = (
        await session.execute(
            select(AgentWorkspace).where(
                AgentWorkspace.workspace_id == workspace_id, AgentWorkspace.agent_id == agent.id
            )
        )
    ).scalar_one_or_none()
    if membership is not None and membership.is_active:
        raise conflict("This agent is already a member of the workspace")
    if membership is None:
        membership = AgentWorkspace(workspace_id=workspace_id, agent_id=agent.id, role=role)
        session.add(membership)
    else:
        membership.role = role
        membership.is_active = True
    record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        verb="agent.joined",
        subject_type="agent",
        subject_id=agent.id,
        after={"role": role},
    )
    await session.flush()
    return membership
