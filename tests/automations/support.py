"""People, teams and a stand-in for the tickets domain, for the automation tests.

`FakeTickets` keeps ticket facts in memory and plays the tickets domain's two parts: the facts
loader (`runtime.services["ticket_facts"]`) and the action executor
(`runtime.services["automation_executor"]`), which emits `ticket.updated` like the real service.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from enque.agents.models import Agent, AgentWorkspace
from enque.automations.engine import TicketFacts
from enque.automations.executor import ActionContext
from enque.core.db import new_id, now
from enque.core.errors import ApiError
from enque.core.events import Event, emit
from enque.core.runtime import Runtime
from enque.core.security import issue_token
from enque.teams.models import Team, TeamMember

ATTRIBUTES = {
    "set_status": "status",
    "set_priority": "priority",
    "set_assignee": "assignee_id",
    "set_team": "team_id",
    "set_category": "category_id",
}


async def add_agent(
    runtime: Runtime, workspace_id: str, *, role: str = "agent", active: bool = True
) -> str:
    async with runtime.db.transaction() as session:
        agent = Agent(email=f"{new_id()}@example.com", display_name="Agent")
        session.add(agent)
        await session.flush()
        session.add(
            AgentWorkspace(
                workspace_id=workspace_id, agent_id=agent.id, role=role, is_active=active
            )
        )
    return agent.id


async def add_team(runtime: Runtime, workspace_id: str, members: list[str]) -> str:
    async with runtime.db.transaction() as session:
        team = Team(workspace_id=workspace_id, name=f"Team {new_id()}")
        session.add(team)
        await session.flush()
        session.add_all(
            TeamMember(workspace_id=workspace_id, team_id=team.id, agent_id=a) for a in members
        )
    return team.id


def token_for(runtime: Runtime, agent_id: str, workspace_id: str, role: str) -> str:
    settings = runtime.settings
    token, _ = issue_token(
        secret=settings.resolved_secret_key(),
        agent_id=agent_id,
        workspace_id=workspace_id,
        role=role,
        token_version=0,
        lifetime=3600,
    )
    return token


@dataclass
class Call:
    action: str
    ticket_id: str
    value: Any
    actor: dict[str, Any]


@dataclass
class FakeTickets:
    tickets: dict[str, TicketFacts] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)  # actions that raise

    def add(self, workspace_id: str, **values: Any) -> TicketFacts:
        moment = now()
        ticket = TicketFacts(
            id=new_id(), workspace_id=workspace_id, created_at=moment, updated_at=moment, **values
        )
        self.tickets[ticket.id] = ticket
        return ticket

    # ---- the facts loader
    async def load(
        self, session: AsyncSession, workspace_id: str, ticket_id: str
    ) -> TicketFacts | None:
        ticket = self.tickets.get(ticket_id)
        return ticket if ticket is not None and ticket.workspace_id == workspace_id else None

    # ---- the executor
    def _change(self, ctx: ActionContext, action: str, value: Any, **changes: Any) -> None:
        if action in self.fail:
            raise ApiError("NOT_FOUND", f"{action} refused")
        self.calls.append(Call(action, ctx.ticket_id, value, ctx.actor.as_dict()))
        before = self.tickets[ctx.ticket_id]
        after = replace(before, updated_at=now(), **changes)
        self.tickets[ctx.ticket_id] = after
        diff = {k: [getattr(before, k), v] for k, v in changes.items() if getattr(before, k) != v}
        if diff:
            payload = {"id": ctx.ticket_id, "changes": diff, "ticket": {"id": ctx.ticket_id}}
            emit(
                ctx.session,
                Event("ticket.updated", ctx.workspace_id, payload, actor=ctx.actor.as_dict()),
            )

    async def _set(self, ctx: ActionContext, action: str, value: Any) -> None:
        self._change(ctx, action, value, **{ATTRIBUTES[action]: value})

    async def set_status(self, ctx: ActionContext, status: str) -> None:
        await self._set(ctx, "set_status", status)

    async def set_priority(self, ctx: ActionContext, priority: str) -> None:
        await self._set(ctx, "set_priority", priority)

    async def set_assignee(self, ctx: ActionContext, agent_id: str | None) -> None:
        await self._set(ctx, "set_assignee", agent_id)

    async def set_team(self, ctx: ActionContext, team_id: str | None) -> None:
        await self._set(ctx, "set_team", team_id)

    async def set_category(self, ctx: ActionContext, category_id: str | None) -> None:
        await self._set(ctx, "set_category", category_id)

    async def add_tag(self, ctx: ActionContext, tag: str) -> None:
        tags = self.tickets[ctx.ticket_id].tags
        self._change(ctx, "add_tag", tag, tags=(*tags, tag))

    async def remove_tag(self, ctx: ActionContext, tag: str) -> None:
        tags = tuple(t for t in self.tickets[ctx.ticket_id].tags if t.lower() != tag.lower())
        self._change(ctx, "remove_tag", tag, tags=tags)

    async def add_note(self, ctx: ActionContext, content: str) -> None:
        self._change(ctx, "add_note", content)

    async def send_canned_reply(self, ctx: ActionContext, canned_reply_id: str) -> None:
        self._change(ctx, "send_canned_reply", canned_reply_id)

    async def notify_agents(self, ctx: ActionContext, agent_ids: list[str]) -> None:
        self._change(ctx, "notify_agents", agent_ids)

    def done(self, ticket_id: str | None = None) -> list[tuple[str, Any]]:
        return [(c.action, c.value) for c in self.calls if ticket_id in (None, c.ticket_id)]
