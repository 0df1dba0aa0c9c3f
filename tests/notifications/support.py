"""Agents with a known name and email, and reading their feed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from enque.agents.models import Agent, AgentWorkspace
from enque.core.runtime import Runtime
from enque.core.security import issue_token
from enque.teams.models import TeamMember
from tests.support.api import Tenant, data, unique


@dataclass
class Person:
    tenant: Tenant
    agent_id: str
    token: str
    email: str
    name: str

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self.tenant.request(method, path, token=self.token, **kwargs)

    async def feed(self, **params: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        response = await self.request("GET", "/v1/notifications", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        return body["data"], body["meta"]

    async def settings(self, *changes: dict[str, Any]) -> list[dict[str, Any]]:
        response = await self.request(
            "PATCH", "/v1/notifications/settings", json={"settings": list(changes)}
        )
        return data(response)  # type: ignore[no-any-return]


async def person(runtime: Runtime, tenant: Tenant, name: str | None = None) -> Person:
    """A new active agent of the tenant's workspace, signed in."""
    handle = unique("ag")
    display = name or f"Agent {handle}"
    email = f"{handle}@agents.test"
    async with runtime.db.transaction() as session:
        agent = Agent(email=email, display_name=display)
        session.add(agent)
        await session.flush()
        session.add(AgentWorkspace(workspace_id=tenant.workspace_id, agent_id=agent.id))
    token, _ = issue_token(
        secret=runtime.settings.resolved_secret_key(),
        agent_id=agent.id,
        workspace_id=tenant.workspace_id,
        role="agent",
        token_version=0,
        lifetime=3600,
    )
    return Person(tenant, agent.id, token, email, display)


def admin(tenant: Tenant) -> Person:
    return Person(tenant, tenant.agent_id, tenant.token, tenant.email, "")


async def join_team(runtime: Runtime, tenant: Tenant, team_id: str, *agent_ids: str) -> None:
    async with runtime.db.transaction() as session:
        session.add_all(
            TeamMember(workspace_id=tenant.workspace_id, team_id=team_id, agent_id=a)
            for a in agent_ids
        )
