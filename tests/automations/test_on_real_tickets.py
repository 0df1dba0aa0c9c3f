"""Rules acting on real tickets through the tickets domain's loader and executor."""

from __future__ import annotations

from sqlalchemy import update

from enque.automations.timerules import run_time_rules
from enque.core.db import now
from enque.core.runtime import Runtime
from enque.tickets.models import Ticket
from tests.support.api import Tenant, data
from tests.support.helpdesk import add_agent, add_team, new_ticket


async def rule(tenant: Tenant, **body) -> str:
    payload = {"name": "rule", "match": "all", "isActive": True, **body}
    return str(data(await tenant.post("/v1/automations", json=payload), 201)["id"])


async def activities(tenant: Tenant, ticket_id: str) -> list[dict]:
    return data(await tenant.get(f"/v1/tickets/{ticket_id}/activities?limit=200"))


async def test_created_rule_triages_a_new_ticket(tenant: Tenant, app_runtime: Runtime):
    team = await add_team(app_runtime, tenant)
    rule_id = await rule(
        tenant,
        trigger="ticket.created",
        conditions=[
            {"field": "subject", "operator": "contains", "value": "urgent"},
            {"field": "customer_domain", "operator": "is", "value": "initech.test"},
        ],
        actions=[
            {"type": "set_priority", "value": "Critical"},
            {"type": "set_team", "value": team},
            {"type": "add_tag", "value": "vip"},
            {"type": "add_note", "value": "Escalated by rule"},
        ],
    )
    matching = await new_ticket(
        tenant, subject="URGENT: down", customer={"email": "bob@initech.test", "name": "Bob"}
    )
    other = await new_ticket(tenant, subject="urgent too")  # another domain

    detail = data(await tenant.get(f"/v1/tickets/{matching['id']}"))
    assert detail["priority"] == "Critical"
    assert detail["team"]["id"] == team
    assert detail["tags"] == ["vip"]
    notes = data(await tenant.get(f"/v1/tickets/{matching['id']}/comments"))
    assert [c["kind"] for c in notes] == ["note"]
    changes = [
        a for a in await activities(tenant, matching["id"]) if a["actor"]["type"] == "automation"
    ]
    assert changes and all(a["actor"]["id"] == rule_id for a in changes)

    untouched = data(await tenant.get(f"/v1/tickets/{other['id']}"))
    assert untouched["priority"] == "Medium" and untouched["tags"] == []


async def test_ping_pong_rules_settle(tenant: Tenant):
    await rule(
        tenant,
        trigger="ticket.updated",
        conditions=[{"field": "priority", "operator": "is", "value": "High"}],
        actions=[{"type": "set_priority", "value": "Low"}],
    )
    await rule(
        tenant,
        trigger="ticket.updated",
        conditions=[{"field": "priority", "operator": "is", "value": "Low"}],
        actions=[{"type": "set_priority", "value": "High"}],
    )
    ticket = await new_ticket(tenant)
    response = await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"priority": "High"})
    data(response)
    final = data(await tenant.get(f"/v1/tickets/{ticket['id']}"))
    assert final["priority"] in ("High", "Low")
    automated = [
        a for a in await activities(tenant, ticket["id"]) if a["actor"]["type"] == "automation"
    ]
    # each rule fired at most once for the one change the agent made
    assert len({a["actor"]["id"] for a in automated}) <= 2
    assert len([a for a in automated if a["verb"] == "ticket.updated"]) <= 2


async def test_round_robin_assignment_on_real_tickets(tenant: Tenant, app_runtime: Runtime):
    team = await add_team(app_runtime, tenant)
    members = [await add_agent(app_runtime, tenant) for _ in range(2)]
    for member in members:
        from enque.teams.models import TeamMember

        async with app_runtime.db.transaction() as session:
            session.add(
                TeamMember(workspace_id=tenant.workspace_id, team_id=team, agent_id=member.agent_id)
            )
    await rule(
        tenant,
        trigger="ticket.created",
        conditions=[],
        actions=[{"type": "assign_round_robin", "value": team}],
    )
    tickets = [await new_ticket(tenant) for _ in range(4)]
    assignees = [
        data(await tenant.get(f"/v1/tickets/{t['id']}"))["assignee"]["id"] for t in tickets
    ]
    assert sorted(assignees) == sorted([m.agent_id for m in members] * 2)


async def test_time_rule_closes_waiting_tickets(tenant: Tenant, app_runtime: Runtime):
    await rule(
        tenant,
        trigger="time.elapsed",
        triggerConfig={"hours": 72, "field": "updated"},
        conditions=[{"field": "status", "operator": "is", "value": "With User"}],
        actions=[{"type": "set_status", "value": "Closed"}],
    )
    waiting = await new_ticket(tenant, status="With User")
    fresh = await new_ticket(tenant, status="With User")
    async with app_runtime.db.transaction() as session:
        await session.execute(
            update(Ticket)
            .where(Ticket.id == waiting["id"])
            .values(updated_at=now() - 73 * 3600)
            .execution_options(synchronize_session=False)
        )
    await run_time_rules(app_runtime)
    await run_time_rules(app_runtime)  # a second tick changes nothing more
    assert data(await tenant.get(f"/v1/tickets/{waiting['id']}"))["status"] == "Closed"
    assert data(await tenant.get(f"/v1/tickets/{fresh['id']}"))["status"] == "With User"
    closes = [
        a
        for a in await activities(tenant, waiting["id"])
        if a["actor"]["type"] == "automation" and a["verb"] == "ticket.status_changed"
    ]
    assert len(closes) == 1
