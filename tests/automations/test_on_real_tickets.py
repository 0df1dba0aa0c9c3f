"""Rules acting on real tickets through the tickets domain's loader and executor."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import update

from enque.automations.timerules import run_time_rules
from enque.core.db import now
from enque.core.events import Event
from enque.core.runtime import Runtime
from enque.teams.models import TeamMember
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


def updates_of(events: list[Event], ticket_id: str) -> list[Event]:
    return [e for e in events if e.type == "ticket.updated" and e.payload["id"] == ticket_id]


async def test_one_pass_is_one_update(
    tenant: Tenant, app_runtime: Runtime, events: list[Event]
) -> None:
    """Several rules, several actions: one version, one event listing every change, and the
    audit trail still names the rule behind each change."""
    team = await add_team(app_runtime, tenant)
    first = await rule(
        tenant,
        trigger="ticket.created",
        conditions=[{"field": "subject", "operator": "contains", "value": "urgent"}],
        actions=[
            {"type": "set_priority", "value": "Critical"},
            {"type": "set_team", "value": team},
            {"type": "add_tag", "value": "vip"},
        ],
    )
    second = await rule(  # sees the priority the first one set
        tenant,
        trigger="ticket.created",
        conditions=[{"field": "priority", "operator": "is", "value": "Critical"}],
        actions=[
            {"type": "set_status", "value": "In Progress"},
            {"type": "add_tag", "value": "escalated"},
            {"type": "stop"},
        ],
    )
    await rule(
        tenant,
        trigger="ticket.created",
        conditions=[],
        actions=[{"type": "add_tag", "value": "after-stop"}],
    )
    ticket = await new_ticket(tenant, subject="Urgent: all down")

    detail = data(await tenant.get(f"/v1/tickets/{ticket['id']}"))
    assert (detail["priority"], detail["status"]) == ("Critical", "In Progress")
    assert detail["team"]["id"] == team and detail["tags"] == ["vip", "escalated"]
    assert detail["version"] == 2  # created as 1, then one update
    (update_event,) = updates_of(events, ticket["id"])
    assert set(update_event.payload["changes"]) == {"priority", "teamId", "tags", "status"}
    assert update_event.payload["changes"]["tags"] == [[], ["vip", "escalated"]]
    assert update_event.actor == {"type": "automation", "id": first}
    assert (update_event.depth, update_event.chain) == (1, [first, second])

    trail = [
        (a["actor"]["id"], a["verb"], a["before"], a["after"])
        for a in reversed(await activities(tenant, ticket["id"]))
        if a["actor"]["type"] == "automation"
    ]
    assert (
        first,
        "ticket.updated",
        {"priority": "Medium", "teamId": None, "tags": []},
        {
            "priority": "Critical",
            "teamId": team,
            "tags": ["vip"],
        },
    ) in trail
    assert (second, "ticket.status_changed", {"status": "Open"}, {"status": "In Progress"}) in (
        trail
    )
    assert (second, "ticket.updated", {"tags": ["vip"]}, {"tags": ["vip", "escalated"]}) in trail
    ran = sorted(actor for actor, verb, _, _ in trail if verb == "automation.ran")
    assert ran == sorted([first, second])
    assert len(trail) == 5


async def test_a_refused_change_leaves_the_others(
    tenant: Tenant, app_runtime: Runtime, events: list[Event]
) -> None:
    category = data(await tenant.post("/v1/categories", json={"name": "Billing"}), 201)["id"]
    rule_id = await rule(
        tenant,
        trigger="ticket.created",
        conditions=[],
        actions=[
            {"type": "set_category", "value": category},
            {"type": "set_priority", "value": "High"},
        ],
    )
    assert (await tenant.delete(f"/v1/categories/{category}")).status_code == 204
    ticket = await new_ticket(tenant)
    detail = data(await tenant.get(f"/v1/tickets/{ticket['id']}"))
    assert detail["priority"] == "High" and detail["category"] is None
    (update_event,) = updates_of(events, ticket["id"])
    assert set(update_event.payload["changes"]) == {"priority"}
    (run,) = [a for a in await activities(tenant, ticket["id"]) if a["verb"] == "automation.ran"]
    assert run["actor"]["id"] == rule_id
    assert [(a["type"], a["result"]) for a in run["after"]["actions"]] == [
        ("set_priority", "applied"),
        ("set_category", "failed: Validation failed"),
    ]


async def test_round_robin_is_fair_across_concurrent_tickets(
    tenant: Tenant, app_runtime: Runtime
) -> None:
    team = await add_team(app_runtime, tenant)
    members = [await add_agent(app_runtime, tenant) for _ in range(3)]
    async with app_runtime.db.transaction() as session:
        session.add_all(
            TeamMember(workspace_id=tenant.workspace_id, team_id=team, agent_id=m.agent_id)
            for m in members
        )
    await rule(
        tenant,
        trigger="ticket.created",
        conditions=[],
        actions=[{"type": "assign_round_robin", "value": team}, {"type": "add_tag", "value": "rr"}],
    )
    tickets = await asyncio.gather(*(new_ticket(tenant) for _ in range(9)))
    details = [data(await tenant.get(f"/v1/tickets/{t['id']}")) for t in tickets]
    assert Counter(d["assignee"]["id"] for d in details) == {m.agent_id: 3 for m in members}
    assert all(d["tags"] == ["rr"] and d["version"] == 2 for d in details)


async def test_rule_changes_take_effect_on_the_next_ticket(tenant: Tenant) -> None:
    rule_id = await rule(
        tenant,
        trigger="ticket.created",
        conditions=[],
        actions=[{"type": "add_tag", "value": "one"}],
    )
    assert data(await tenant.get(f"/v1/tickets/{(await new_ticket(tenant))['id']}"))["tags"] == [
        "one"
    ]
    changed = {"actions": [{"type": "add_tag", "value": "two"}]}
    data(await tenant.patch(f"/v1/automations/{rule_id}", json=changed))
    assert data(await tenant.get(f"/v1/tickets/{(await new_ticket(tenant))['id']}"))["tags"] == [
        "two"
    ]
    data(await tenant.patch(f"/v1/automations/{rule_id}", json={"isActive": False}))
    assert data(await tenant.get(f"/v1/tickets/{(await new_ticket(tenant))['id']}"))["tags"] == []
    data(await tenant.patch(f"/v1/automations/{rule_id}", json={"isActive": True}))
    assert (await tenant.delete(f"/v1/automations/{rule_id}")).status_code == 204
    assert data(await tenant.get(f"/v1/tickets/{(await new_ticket(tenant))['id']}"))["tags"] == []
