"""Helpers for tests of tickets, comments and customers: agents with a role, teams, tickets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from enque.agents.models import Agent, AgentWorkspace
from enque.core.runtime import Runtime
from enque.core.security import issue_token
from enque.teams.models import Team
from tests.support.api import Tenant, data, unique


@dataclass
class Member:
    """Another agent of a tenant's workspace, signed in with its own token."""

    agent_id: str
    token: str


async def add_agent(runtime: Runtime, tenant: Tenant, role: str = "agent") -> Member:
    name = unique("agent")
    async with runtime.db.transaction() as session:
        agent = Agent(email=f"{name}@example.com", display_name=f"Agent {name}")
        session.add(agent)
        await session.flush()
        session.add(AgentWorkspace(workspace_id=tenant.workspace_id, agent_id=agent.id, role=role))
    token, _ = issue_token(
        secret=runtime.settings.resolved_secret_key(),
        agent_id=agent.id,
        workspace_id=tenant.workspace_id,
        role=role,
        token_version=0,
        lifetime=3600,
    )
    return Member(agent.id, token)


async def add_team(runtime: Runtime, tenant: Tenant, name: str | None = None) -> str:
    async with runtime.db.transaction() as session:
        team = Team(workspace_id=tenant.workspace_id, name=name or unique("team"))
        session.add(team)
        await session.flush()
        return team.id


async def new_ticket(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {
        "subject": "Printer on fire",
        "body": "<p>It is <b>burning</b></p>",
        "customer": {"email": f"{unique('c')}@customer.test", "name": "Casey Customer"},
        **fields,
    }
    if "userId" in fields:
        body.pop("customer")
    return data(await tenant.post("/v1/tickets", json=body), 201)  # type: ignore[no-any-return]
