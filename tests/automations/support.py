"""People, teams and a stand-in for the tickets domain, for the automation tests.

`FakeTickets` keeps ticket facts in memory and plays the tickets domain's two parts: the facts
loader (`runtime.services["ticket_facts"]`) and the action executor
(`runtime.services["automation_executor"]`), which makes each ticket's field changes one update
with one `ticket.updated`, like the real service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from enque.agents.models import Agent, AgentWorkspace
from enque.automations.engine import FIELD_ACTIONS, Operation, TicketFacts
from enque.automations.executor import ActionContext
from enque.core.db import new_id, now
from enque.core.errors import ApiError
from enque.core.events import Event, emit
from enque.core.runtime import Runtime
from enque.core.security import issue_token
from enque.teams.models import Team, TeamMember

CHANGED = ("status", "priority", "assignee_id", "team_id", "category_id", "tags")


def _effect_on(facts: TicketFacts, op: Operation) -> dict[str, Any]:
    if op.type == "add_tag":
        return {"tags": (*facts.tags, op.value)}
    if op.type == "remove_tag":
        return {"tags": tuple(t for t in facts.tags if t.lower() != op.value.lower())}
    return {FIELD_ACTIONS[op.type]: op.value}


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
    fail: set[str] = field(default_factory=set)  # actions that are refused
    updates: list[tuple[str, list[Operation]]] = field(default_factory=list)  # one per update

    def add(self, workspace_id: str, **values: Any) -> TicketFacts:
        moment = now()
        ticket = TicketFacts(
            id=new_id(), workspace_id=workspace_id, created_at=moment, updated_at=moment, **values
        )
        self.tickets[ticket.id] = ticket
        return ticket

    # ---- the facts loader
    async def load(
        self,
        session: AsyncSession,
        workspace_id: str,
        ticket_ids: Sequence[str],
        *,
        custom: bool = True,
    ) -> dict[str, TicketFacts]:
        found = (self.tickets.get(i) for i in ticket_ids)
        return {t.id: t for t in found if t is not None and t.workspace_id == workspace_id}

    # ---- the executor
    def _change(self, ctx: ActionContext, action: str, value: Any) -> None:
        if action in self.fail:
            raise ApiError("NOT_FOUND", f"{action} refused")
        self.calls.append(Call(action, ctx.ticket_id, value, ctx.actor.as_dict()))

    async def change_tickets(
        self,
        session: AsyncSession,
        workspace_id: str,
        changes: Mapping[str, Sequence[Operation]],
    ) -> dict[str, list[str | None]]:
        """Like the tickets domain: each ticket's changes as one update and one event."""
        refused: dict[str, list[str | None]] = {}
        for ticket_id, ops in changes.items():
            before = self.tickets[ticket_id]
            after, reasons, applied = before, [], []
            for op in ops:
                if op.type in self.fail:
                    reasons.append(f"{op.type} refused")
                    continue
                reasons.append(None)
                applied.append(op)
                actor = {"type": "automation", "id": op.rule_id}
                self.calls.append(Call(op.type, ticket_id, op.value, actor))
                after = replace(after, updated_at=now(), **_effect_on(after, op))
            refused[ticket_id] = reasons
            self.tickets[ticket_id] = after
            self.updates.append((ticket_id, applied))
            diff = {
                key: [getattr(before, key), getattr(after, key)]
                for key in CHANGED
                if getattr(before, key) != getattr(after, key)
            }
            if diff:
                payload = {"id": ticket_id, "changes": diff, "ticket": {"id": ticket_id}}
                actor = {"type": "automation", "id": applied[0].rule_id}
                emit(session, Event("ticket.updated", workspace_id, payload, actor=actor))
        return refused

    async def add_note(self, ctx: ActionContext, content: str) -> None:
        self._change(ctx, "add_note", content)

    async def send_canned_reply(self, ctx: ActionContext, canned_reply_id: str) -> None:
        self._change(ctx, "send_canned_reply", canned_reply_id)

    async def notify_agents(self, ctx: ActionContext, agent_ids: list[str]) -> None:
        self._change(ctx, "notify_agents", agent_ids)

    def done(self, ticket_id: str | None = None) -> list[tuple[str, Any]]:
        return [(c.action, c.value) for c in self.calls if ticket_id in (None, c.ticket_id)]
