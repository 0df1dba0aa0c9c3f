"""Round-robin assignment inside a team, fair across concurrent tickets and workers.

Each team has a counter row; one atomic upsert (`INSERT … ON CONFLICT DO UPDATE SET
counter = counter + n RETURNING counter`) hands every caller distinct numbers (n of them for a
batch of tickets), on SQLite and PostgreSQL alike, and each number picks the next active
member in a stable order.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from enque.agents.models import Agent, AgentWorkspace
from enque.automations.models import RoundRobinCursor
from enque.core.db import insert_on_conflict, now
from enque.teams.models import Team, TeamMember


async def active_members(session: AsyncSession, *, workspace_id: str, team_id: str) -> list[str]:
    """Agent ids of the team's members who can take tickets, in a stable order."""
    stmt = (
        select(TeamMember.agent_id)
        .join(Team, Team.id == TeamMember.team_id)
        .join(
            AgentWorkspace,
            (AgentWorkspace.agent_id == TeamMember.agent_id)
            & (AgentWorkspace.workspace_id == TeamMember.workspace_id),
        )
        .join(Agent, Agent.id == TeamMember.agent_id)
        .where(
            TeamMember.workspace_id == workspace_id,
            TeamMember.team_id == team_id,
            Team.deleted_at.is_(None),
            AgentWorkspace.is_active.is_(True),
            Agent.is_active.is_(True),
        )
        .order_by(TeamMember.agent_id)
    )
    return list((await session.execute(stmt)).scalars())


async def advance(session: AsyncSession, *, workspace_id: str, team_id: str, count: int = 1) -> int:
    """Take the team's next `count` ticket numbers (1, 2, …), distinct for every caller;
    returns the last of them."""
    stmt = insert_on_conflict(session, RoundRobinCursor).values(
        workspace_id=workspace_id, team_id=team_id, counter=count, updated_at=now()
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[RoundRobinCursor.team_id],
        set_={"counter": RoundRobinCursor.counter + count, "updated_at": now()},
    ).returning(RoundRobinCursor.counter)
    return int((await session.execute(stmt)).scalar_one())


async def next_assignees(
    session: AsyncSession, *, workspace_id: str, team_id: str, count: int
) -> list[str]:
    """The members who get the team's next `count` tickets, in turn (empty when nobody is
    active). One atomic step however many tickets: concurrent callers get disjoint turns."""
    members = await active_members(session, workspace_id=workspace_id, team_id=team_id)
    if not members or count < 1:
        return []
    last = await advance(session, workspace_id=workspace_id, team_id=team_id, count=count)
    return [members[(number - 1) % len(members)] for number in range(last - count + 1, last + 1)]


async def next_assignee(session: AsyncSession, *, workspace_id: str, team_id: str) -> str | None:
    """The member who gets the next ticket of the team, or None when nobody is active."""
    picked = await next_assignees(session, workspace_id=workspace_id, team_id=team_id, count=1)
    return picked[0] if picked else None
