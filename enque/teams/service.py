"""Teams: create, rename, soft delete and membership. Tickets are never touched here."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.agents.models import Agent, AgentWorkspace
from enque.agents.service import like_pattern
from enque.core.api import PageParams
from enque.core.db import now, unit
from enque.core.errors import ApiError, conflict, not_found
from enque.core.pagination import Page, SortKey, keyset_page
from enque.teams.models import Team, TeamMember

EDITABLE = ("name", "description", "icon", "manager_id")


@dataclass
class TeamView:
    team: Team
    member_ids: list[str]


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


async def member_ids_of(
    session: AsyncSession, *, workspace_id: str, team_ids: Sequence[str]
) -> dict[str, list[str]]:
    """Member agent ids (sorted) of several teams in one query."""
    found: dict[str, list[str]] = defaultdict(list)
    if team_ids:
        rows = await session.execute(
            select(TeamMember.team_id, TeamMember.agent_id)
            .where(TeamMember.workspace_id == workspace_id, TeamMember.team_id.in_(team_ids))
            .order_by(TeamMember.team_id, TeamMember.agent_id)
        )
        for team_id, agent_id in rows:
            found[team_id].append(agent_id)
    return found


async def get_team(session: AsyncSession, *, workspace_id: str, team_id: str) -> Team:
    team = (
        await session.execute(
            select(Team).where(
                Team.workspace_id == workspace_id, Team.id == team_id, Team.deleted_at.is_(None)
            )
        )
    ).scalar_one_or_none()
    if team is None:
        raise not_found("Team")
    return team


async def view_team(session: AsyncSession, *, workspace_id: str, team_id: str) -> TeamView:
    team = await get_team(session, workspace_id=workspace_id, team_id=team_id)
    members = await member_ids_of(session, workspace_id=workspace_id, team_ids=[team.id])
    return TeamView(team, members.get(team.id, []))


async def list_teams(
    session: AsyncSession, *, workspace_id: str, page: PageParams, q: str | None = None
) -> Page[TeamView]:
    """Live teams by name, each with its member ids (two queries per page)."""
    sort_name = func.lower(Team.name)
    stmt = select(Team, sort_name.label("sort_name")).where(
        Team.workspace_id == workspace_id, Team.deleted_at.is_(None)
    )
    if q:
        stmt = stmt.where(sort_name.like(like_pattern(q), escape="\\"))
    result = await keyset_page(
        session,
        stmt,
        [SortKey(sort_name), SortKey(Team.id)],
        page,
        key_of=lambda row: (row.sort_name, row[0].id),
        scalars=False,
    )
    teams = [row[0] for row in result.items]
    members = await member_ids_of(
        session, workspace_id=workspace_id, team_ids=[t.id for t in teams]
    )
    views = [TeamView(t, members.get(t.id, [])) for t in teams]
    return Page(views, result.next_cursor, result.total)


async def require_agents(
    session: AsyncSession,
    *,
    workspace_id: str,
    agent_ids: Sequence[str],
    path: str,
    indexed: bool = True,
) -> list[str]:
    """The ids, deduplicated; 422 naming each id that is not an active agent of the workspace."""
    wanted = _unique(agent_ids)
    if not wanted:
        return []
    rows = await session.execute(
        select(AgentWorkspace.agent_id)
        .join(Agent, Agent.id == AgentWorkspace.agent_id)
        .where(
            AgentWorkspace.workspace_id == workspace_id,
            AgentWorkspace.agent_id.in_(wanted),
            AgentWorkspace.is_active.is_(True),
            Agent.is_active.is_(True),
        )
    )
    known = set(rows.scalars().all())
    missing = [
        {
            "path": f"{path}.{i}" if indexed else path,
            "message": f"no active agent {agent_id} in this workspace",
        }
        for i, agent_id in enumerate(agent_ids)
        if agent_id not in known
    ]
    if missing:
        raise ApiError("VALIDATION_ERROR", "Unknown agent", missing)
    return wanted


async def require_teams(
    session: AsyncSession, *, workspace_id: str, team_ids: Sequence[str], path: str = "teamIds"
) -> list[str]:
    """The ids, deduplicated; 422 naming each id that is not a live team of the workspace."""
    wanted = _unique(team_ids)
    if not wanted:
        return []
    rows = await session.execute(
        select(Team.id).where(
            Team.workspace_id == workspace_id, Team.id.in_(wanted), Team.deleted_at.is_(None)
        )
    )
    known = set(rows.scalars().all())
    missing = [
        {"path": f"{path}.{i}", "message": f"no team {team_id} in this workspace"}
        for i, team_id in enumerate(team_ids)
        if team_id not in known
    ]
    if missing:
        raise ApiError("VALIDATION_ERROR", "Unknown team", missing)
    return wanted


async def add_agent_to_teams(
    session: AsyncSession, *, workspace_id: str, agent_id: str, team_ids: Sequence[str]
) -> list[str]:
    """Join the live teams among `team_ids` (others are skipped); returns those joined."""
    if not team_ids:
        return []
    live = set(
        (
            await session.execute(
                select(Team.id).where(
                    Team.workspace_id == workspace_id,
                    Team.id.in_(team_ids),
                    Team.deleted_at.is_(None),
                )
            )
        ).scalars()
    )
    already = set(
        (
            await session.execute(
                select(TeamMember.team_id).where(
                    TeamMember.workspace_id == workspace_id, TeamMember.agent_id == agent_id
                )
            )
        ).scalars()
    )
    joined = [t for t in _unique(team_ids) if t in live and t not in already]
    session.add_all(
        TeamMember(workspace_id=workspace_id, team_id=t, agent_id=agent_id) for t in joined
    )
    return joined


async def _flush_name(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        raise conflict(
            "A team with this name exists", [{"path": "name", "message": "taken"}]
        ) from exc


async def _check_name_free(
    session: AsyncSession, workspace_id: str, name: str, except_id: str | None = None
) -> None:
    stmt = select(Team.id).where(
        Team.workspace_id == workspace_id,
        func.lower(Team.name) == name.lower(),
        Team.deleted_at.is_(None),
    )
    if except_id:
        stmt = stmt.where(Team.id != except_id)
    if (await session.execute(stmt)).first():
        raise conflict("A team with this name exists", [{"path": "name", "message": "taken"}])


async def create_team(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    name: str,
    description: str | None = None,
    icon: str | None = None,
    manager_id: str | None = None,
    agent_ids: Sequence[str] = (),
) -> TeamView:
    async with unit(session):
        await _check_name_free(session, workspace_id, name)
        if manager_id is not None:
            await require_agents(
                session,
                workspace_id=workspace_id,
                agent_ids=[manager_id],
                path="managerId",
                indexed=False,
            )
        members = sorted(
            await require_agents(
                session, workspace_id=workspace_id, agent_ids=agent_ids, path="agentIds"
            )
        )
        team = Team(
            workspace_id=workspace_id,
            name=name,
            description=description,
            icon=icon,
            manager_id=manager_id,
        )
        session.add(team)
        await _flush_name(session)
        session.add_all(
            TeamMember(workspace_id=workspace_id, team_id=team.id, agent_id=a) for a in members
        )
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="team.created",
            subject_type="team",
            subject_id=team.id,
            after={"name": name, "managerId": manager_id, "memberIds": members},
        )
    return TeamView(team, members)


async def update_team(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    team_id: str,
    changes: dict[str, Any],
) -> TeamView:
    """Change name, description, icon or manager (`None` clears the last three)."""
    async with unit(session):
        team = await get_team(session, workspace_id=workspace_id, team_id=team_id)
        changes = {k: v for k, v in changes.items() if k in EDITABLE}
        if changes.get("name") is not None:
            await _check_name_free(session, workspace_id, changes["name"], except_id=team.id)
        if changes.get("manager_id") is not None:
            await require_agents(
                session,
                workspace_id=workspace_id,
                agent_ids=[changes["manager_id"]],
                path="managerId",
                indexed=False,
            )
        before = {k: getattr(team, k) for k, v in changes.items() if getattr(team, k) != v}
        for key in before:
            setattr(team, key, changes[key])
        if before:
            await _flush_name(session)
            record(
                session,
                workspace_id=workspace_id,
                actor=actor,
                verb="team.updated",
                subject_type="team",
                subject_id=team.id,
                before=before,
                after={k: changes[k] for k in before},
            )
        members = await member_ids_of(session, workspace_id=workspace_id, team_ids=[team.id])
    return TeamView(team, members.get(team.id, []))


async def delete_team(
    session: AsyncSession, *, workspace_id: str, actor: Actor, team_id: str
) -> None:
    """Soft delete: the team disappears from lists; tickets and history keep their team id."""
    async with unit(session):
        team = await get_team(session, workspace_id=workspace_id, team_id=team_id)
        team.deleted_at = now()
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="team.deleted",
            subject_type="team",
            subject_id=team.id,
            before={"name": team.name},
        )


async def set_members(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    team_id: str,
    agent_ids: Sequence[str],
) -> TeamView:
    """Replace the team's members with `agent_ids` (active agents of the workspace)."""
    async with unit(session):
        team = await get_team(session, workspace_id=workspace_id, team_id=team_id)
        wanted = sorted(
            await require_agents(
                session, workspace_id=workspace_id, agent_ids=agent_ids, path="agentIds"
            )
        )
        current = (await member_ids_of(session, workspace_id=workspace_id, team_ids=[team.id])).get(
            team.id, []
        )
        removed = [a for a in current if a not in wanted]
        added = [a for a in wanted if a not in current]
        if removed:
            await session.execute(
                delete(TeamMember).where(
                    TeamMember.workspace_id == workspace_id,
                    TeamMember.team_id == team.id,
                    TeamMember.agent_id.in_(removed),
                )
            )
        session.add_all(
            TeamMember(workspace_id=workspace_id, team_id=team.id, agent_id=a) for a in added
        )
        if added or removed:
            team.updated_at = now()
            record(
                session,
                workspace_id=workspace_id,
                actor=actor,
                verb="team.members_changed",
                subject_type="team",
                subject_id=team.id,
                before={"memberIds": current},
                after={"memberIds": wanted},
            )
    return TeamView(team, wanted)
