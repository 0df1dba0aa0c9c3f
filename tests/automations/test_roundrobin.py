"""Round robin is fair under concurrency: the database hands out distinct numbers."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import update

from enque.agents.models import Agent, AgentWorkspace
from enque.automations.roundrobin import next_assignee
from enque.core.runtime import Runtime
from tests.automations.support import add_agent, add_team
from tests.support.api import Tenant


async def assign_many(runtime: Runtime, workspace_id: str, team_id: str, n: int) -> Counter[str]:
    async def one() -> str | None:
        async with runtime.db.transaction() as session:
            return await next_assignee(session, workspace_id=workspace_id, team_id=team_id)

    picked = await asyncio.gather(*(one() for _ in range(n)))
    return Counter(p for p in picked if p is not None)


async def test_concurrent_tickets_are_shared_evenly(tenant: Tenant, app_runtime: Runtime) -> None:
    members = [await add_agent(app_runtime, tenant.workspace_id) for _ in range(3)]
    team = await add_team(app_runtime, tenant.workspace_id, members)
    counts = await assign_many(app_runtime, tenant.workspace_id, team, 30)
    assert counts == dict.fromkeys(members, 10)


async def test_inactive_members_are_skipped(tenant: Tenant, app_runtime: Runtime) -> None:
    members = [await add_agent(app_runtime, tenant.workspace_id) for _ in range(4)]
    team = await add_team(app_runtime, tenant.workspace_id, members)
    async with app_runtime.db.transaction() as session:
        await session.execute(
            update(AgentWorkspace)
            .where(AgentWorkspace.agent_id == members[0])
            .values(is_active=False)
        )
        await session.execute(update(Agent).where(Agent.id == members[1]).values(is_active=False))
    counts = await assign_many(app_runtime, tenant.workspace_id, team, 10)
    assert counts == {members[2]: 5, members[3]: 5}


async def test_team_without_active_members(tenant: Tenant, app_runtime: Runtime) -> None:
    gone = await add_agent(app_runtime, tenant.workspace_id, active=False)
    team = await add_team(app_runtime, tenant.workspace_id, [gone])
    assert await assign_many(app_runtime, tenant.workspace_id, team, 2) == Counter()


async def test_team_of_another_workspace_has_no_members_here(
    tenant: Tenant, make_tenant, app_runtime: Runtime
) -> None:
    other = await make_tenant()
    theirs = await add_team(
        app_runtime, other.workspace_id, [await add_agent(app_runtime, other.workspace_id)]
    )
    assert await assign_many(app_runtime, tenant.workspace_id, theirs, 1) == Counter()
