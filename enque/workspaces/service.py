"""Workspaces: the caller's list, settings, and soft deletion."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any
from zoneinfo import available_timezones

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.agents.models import AgentWorkspace
from enque.core.api import PageParams
from enque.core.db import now, unit
from enque.core.errors import not_found, validation_error
from enque.core.pagination import Page, SortKey, keyset_page
from enque.workspaces.models import Workspace


@dataclass
class Membership:
    workspace: Workspace
    role: str


def _live() -> tuple[Any, ...]:
    return (Workspace.is_active.is_(True), Workspace.deleted_at.is_(None))


async def list_my_workspaces(
    session: AsyncSession, *, agent_id: str, page: PageParams
) -> Page[Membership]:
    """Live workspaces where the agent is an active member."""
    stmt = (
        select(Workspace, AgentWorkspace.role)
        .join(AgentWorkspace, AgentWorkspace.workspace_id == Workspace.id)
        .where(AgentWorkspace.agent_id == agent_id, AgentWorkspace.is_active.is_(True), *_live())
    )
    result = await keyset_page(
        session,
        stmt,
        [SortKey(Workspace.id)],
        page,
        key_of=lambda row: (row[0].id,),
        scalars=False,
    )
    return Page([Membership(r[0], r[1]) for r in result.items], result.next_cursor, result.total)


async def get_workspace(
    session: AsyncSession, *, workspace_id: str, requested_id: str
) -> Workspace:
    """The token's workspace; any other id (even one the agent belongs to) is 404."""
    if requested_id != workspace_id:
        raise not_found("Workspace")
    workspace = (
        await session.execute(select(Workspace).where(Workspace.id == workspace_id, *_live()))
    ).scalar_one_or_none()
    if workspace is None:
        raise not_found("Workspace")
    return workspace


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_timezone(name: str) -> str:
    """An IANA time zone name (`Europe/Paris`), as zoneinfo knows them."""
    if name not in _zones():
        raise validation_error("timezone", f"unknown time zone {name!r}")
    return name


async def update_workspace(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    requested_id: str,
    changes: dict[str, Any],
) -> Workspace:
    """Rename, set the time zone, or merge `settings` (a key set to null is removed)."""
    async with unit(session):
        workspace = await get_workspace(
            session, workspace_id=workspace_id, requested_id=requested_id
        )
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        if changes.get("name") is not None and changes["name"] != workspace.name:
            before["name"], after["name"] = workspace.name, changes["name"]
            workspace.name = changes["name"]
        if changes.get("timezone") is not None and changes["timezone"] != workspace.timezone:
            before["timezone"] = workspace.timezone
            after["timezone"] = workspace.timezone = check_timezone(changes["timezone"])
        if changes.get("settings"):
            merged = dict(workspace.settings or {})
            for key, value in changes["settings"].items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            if merged != workspace.settings:
                before["settings"], after["settings"] = workspace.settings, merged
                workspace.settings = merged
        if after:
            record(
                session,
                workspace_id=workspace.id,
                actor=actor,
                verb="workspace.updated",
                subject_type="workspace",
                subject_id=workspace.id,
                before=before,
                after=after,
            )
    return workspace


async def delete_workspace(
    session: AsyncSession, *, workspace_id: str, actor: Actor, requested_id: str
) -> None:
    """Soft delete: every token for it stops working; the data stays (for 30 days)."""
    async with unit(session):
        workspace = await get_workspace(
            session, workspace_id=workspace_id, requested_id=requested_id
        )
        workspace.deleted_at = now()
        record(
            session,
            workspace_id=workspace.id,
            actor=actor,
            verb="workspace.deleted",
            subject_type="workspace",
            subject_id=workspace.id,
        )
