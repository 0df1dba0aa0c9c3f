"""Saved views: who sees them, who changes them, and their live counts.

- `personal`: its owner only; `team`: members of the team, the owner and managers;
  `workspace`: all.
- Anyone may keep personal views; sharing with a team needs membership of it (or a manager);
  sharing with the workspace needs a manager. The owner or a manager changes a shared view.
- Counts run the inbox's own filter conditions (`tickets.queries.list_tickets`), one count
  per view, so a view counts exactly what opening it lists.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.auth.deps import Principal
from enque.core.api import PageParams
from enque.core.db import unit
from enque.core.errors import forbidden, not_found, validation_error
from enque.core.runtime import runtime_of
from enque.teams.models import Team, TeamMember
from enque.tickets import queries
from enque.views.models import SavedView


async def _team_ids(session: AsyncSession, principal: Principal) -> list[str]:
    rows = await session.execute(
        select(TeamMember.team_id).where(
            TeamMember.workspace_id == principal.workspace_id,
            TeamMember.agent_id == principal.agent_id,
        )
    )
    return list(rows.scalars())


def _visible(principal: Principal, team_ids: list[str]) -> Any:
    """Own views, workspace views, and team views of the agent's teams (all, for managers)."""
    team_views = SavedView.scope == "team"
    if not principal.is_manager:
        team_views = team_views & SavedView.team_id.in_(team_ids)
    return or_(SavedView.owner_id == principal.agent_id, SavedView.scope == "workspace", team_views)


async def list_views(session: AsyncSession, *, principal: Principal) -> list[SavedView]:
    teams = await _team_ids(session, principal)
    rows = await session.execute(
        select(SavedView)
        .where(SavedView.workspace_id == principal.workspace_id, _visible(principal, teams))
        .order_by(SavedView.position, SavedView.name, SavedView.id)
    )
    return list(rows.scalars())


async def get_view(session: AsyncSession, *, principal: Principal, view_id: str) -> SavedView:
    teams = await _team_ids(session, principal)
    view = (
        await session.execute(
            select(SavedView).where(
                SavedView.workspace_id == principal.workspace_id,
                SavedView.id == view_id,
                _visible(principal, teams),
            )
        )
    ).scalar_one_or_none()
    if view is None:
        raise not_found("View")
    return view


async def _check_sharing(
    session: AsyncSession, principal: Principal, scope: str, team_id: str | None
) -> str | None:
    if scope == "team":
        if not team_id:
            raise validation_error("teamId", "a team view names its team")
        team = (
            await session.execute(
                select(Team.id).where(
                    Team.workspace_id == principal.workspace_id,
                    Team.id == team_id,
                    Team.deleted_at.is_(None),
                )
            )
        ).scalar_one_or_none()
        if team is None:
            raise validation_error("teamId", "no such team in this workspace")
        if not principal.is_manager and team_id not in await _team_ids(session, principal):
            raise forbidden("Only members of the team (or managers) share views with it")
        return team_id
    if scope == "workspace" and not principal.is_manager:
        raise forbidden("Only managers share views with the whole workspace")
    return None


def _check_owner(principal: Principal, view: SavedView) -> None:
    if view.owner_id != principal.agent_id and not (
        principal.is_manager and view.scope != "personal"
    ):
        raise forbidden("Only the owner or a manager changes this view")


async def _check_filters(session: AsyncSession, workspace_id: str, filters: dict[str, Any]) -> None:
    """Custom field filters must name fields of the workspace (422 otherwise)."""
    if filters.get("cf"):
        condition = runtime_of(session).services.get(queries.CUSTOM_FIELD_FILTER)
        if condition is None:
            raise validation_error("filters.cf", "custom fields are not available")
        await condition(session, workspace_id=workspace_id, filters=filters["cf"])


async def create_view(
    session: AsyncSession, *, principal: Principal, fields: dict[str, Any]
) -> SavedView:
    await _check_filters(session, principal.workspace_id, fields.get("filters") or {})
    async with unit(session):
        team_id = await _check_sharing(session, principal, fields["scope"], fields.get("team_id"))
        view = SavedView(
            workspace_id=principal.workspace_id,
            owner_id=principal.agent_id,
            **{**fields, "team_id": team_id},
        )
        session.add(view)
        await session.flush()
        record(
            session,
            workspace_id=principal.workspace_id,
            actor=Actor("agent", principal.agent_id),
            verb="view.created",
            subject_type="view",
            subject_id=view.id,
            after={"name": view.name, "scope": view.scope},
        )
    return view


async def update_view(
    session: AsyncSession, *, principal: Principal, view_id: str, changes: dict[str, Any]
) -> SavedView:
    await _check_filters(session, principal.workspace_id, changes.get("filters") or {})
    async with unit(session):
        view = await get_view(session, principal=principal, view_id=view_id)
        _check_owner(principal, view)
        if "scope" in changes or "team_id" in changes:
            scope = changes.get("scope", view.scope)
            changes["team_id"] = await _check_sharing(
                session, principal, scope, changes.get("team_id", view.team_id)
            )
        for key, value in changes.items():
            setattr(view, key, value)
        record(
            session,
            workspace_id=principal.workspace_id,
            actor=Actor("agent", principal.agent_id),
            verb="view.updated",
            subject_type="view",
            subject_id=view.id,
            after={k: v for k, v in changes.items() if k != "filters"},
        )
    return view


async def delete_view(session: AsyncSession, *, principal: Principal, view_id: str) -> None:
    async with unit(session):
        view = await get_view(session, principal=principal, view_id=view_id)
        _check_owner(principal, view)
        await session.delete(view)
        record(
            session,
            workspace_id=principal.workspace_id,
            actor=Actor("agent", principal.agent_id),
            verb="view.deleted",
            subject_type="view",
            subject_id=view_id,
            before={"name": view.name},
        )


def ticket_filters(view: SavedView) -> queries.TicketFilters:
    f = dict(view.filters or {})
    tag = f.get("tag")
    return queries.TicketFilters(
        status=list(f.get("status") or []),
        priority=list(f.get("priority") or []),
        assignee_id=f.get("assigneeId"),
        team_id=f.get("teamId"),
        category_id=f.get("categoryId"),
        user_id=f.get("userId"),
        company_id=f.get("companyId"),
        mailbox_id=f.get("mailboxId"),
        tag=" ".join(tag.split()).lower() if tag else None,
        q=f.get("q"),
        created_after=f.get("createdAfter"),
        created_before=f.get("createdBefore"),
        updated_after=f.get("updatedAfter"),
        updated_before=f.get("updatedBefore"),
        include_merged=bool(f.get("includeMerged")),
        breached=f.get("breached"),
        sort=view.sort,
        custom_fields={k: v for k, v in (f.get("cf") or {}).items()},
    )


COUNT_ONLY = PageParams(limit=1, include_total=True)


async def counts(session: AsyncSession, *, principal: Principal) -> list[dict[str, Any]]:
    """`[{id, count}]` of every view the agent sees: the tickets each would list now."""
    out = []
    for view in await list_views(session, principal=principal):
        page = await queries.list_tickets(
            session,
            workspace_id=principal.workspace_id,
            agent_id=principal.agent_id,
            filters=ticket_filters(view),
            page=COUNT_ONLY,
        )
        out.append({"id": view.id, "count": page.total or 0})
    return out
