"""Rules on SLA events (`sla.warning`, `sla.breached`) acting on real tickets, raised by the
SLA due check like in production."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from enque.core.db import now
from enque.core.runtime import Runtime
from enque.sla.service import WARN_BEFORE, check_due
from enque.tickets.models import Ticket
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import add_agent, new_ticket

POLICY = {"name": "Standard", "targets": {"firstResponseMinutes": 60, "resolutionMinutes": 480}}


async def rule(tenant: Tenant, **body: Any) -> dict[str, Any]:
    payload = {"name": "rule", "match": "all", "isActive": True, "conditions": [], **body}
    return data(await tenant.post("/v1/automations", json=payload), 201)  # type: ignore[no-any-return]


async def activities(tenant: Tenant, ticket_id: str) -> list[dict[str, Any]]:
    return data(await tenant.get(f"/v1/tickets/{ticket_id}/activities?limit=200"))  # type: ignore[no-any-return]


async def first_due(tenant: Tenant, ticket_id: str) -> int:
    return int(data(await tenant.get(f"/v1/tickets/{ticket_id}"))["firstResponseDueAt"])


async def test_breach_rule_raises_the_priority_and_notifies(
    tenant: Tenant, app_runtime: Runtime
) -> None:
    lead = await add_agent(app_runtime, tenant)
    data(await tenant.post("/v1/sla-policies", json=POLICY), 201)
    made = await rule(
        tenant,
        name="Escalate late first responses",
        trigger="sla.breached",
        conditions=[{"field": "sla_target", "operator": "is", "value": "firstResponse"}],
        actions=[
            {"type": "set_priority", "value": "High"},
            {"type": "notify_agents", "value": [lead.agent_id]},
        ],
    )
    ticket = await new_ticket(tenant)
    bystander = await new_ticket(tenant, status="With User")  # its clock is paused
    due = await first_due(tenant, ticket["id"])
    assert data(await tenant.get("/v1/notifications", token=lead.token)) == []

    await check_due(app_runtime, at=due - WARN_BEFORE + 1)  # a warning is not a breach
    assert data(await tenant.get(f"/v1/tickets/{ticket['id']}"))["priority"] == "Medium"

    await check_due(app_runtime, at=due + 1)
    escalated = data(await tenant.get(f"/v1/tickets/{ticket['id']}"))
    assert escalated["priority"] == "High" and escalated["slaBreached"] == ["firstResponse"]
    assert data(await tenant.get(f"/v1/tickets/{bystander['id']}"))["priority"] == "Medium"
    trail = await activities(tenant, ticket["id"])
    ran = [a for a in trail if a["verb"] == "automation.ran"]
    assert len(ran) == 1 and ran[0]["actor"] == {
        "type": "automation",
        "id": made["id"],
        "name": None,
    }
    assert ran[0]["after"]["trigger"] == "sla.breached"
    assert {a["type"]: a["result"] for a in ran[0]["after"]["actions"]} == {
        "set_priority": "applied",
        "notify_agents": "applied",
    }
    changed = [a for a in trail if a["verb"] == "ticket.updated"]
    assert changed[-1]["after"] == {"priority": "High"}
    assert changed[-1]["actor"]["type"] == "automation"
    feed = data(await tenant.get("/v1/notifications", token=lead.token))
    assert [(n["event"], n["ticketId"]) for n in feed] == [("automation", ticket["id"])]
    assert data(await tenant.get(f"/v1/automations/{made['id']}"))["runCount"] == 1

    # the breach is raised once: later checks run nothing more
    await check_due(app_runtime, at=due + 120)
    assert (
        len([a for a in await activities(tenant, ticket["id"]) if a["verb"] == "automation.ran"])
        == 1
    )


async def test_warning_rule_and_target_conditions(tenant: Tenant, app_runtime: Runtime) -> None:
    data(await tenant.post("/v1/sla-policies", json=POLICY), 201)
    await rule(
        tenant,
        trigger="sla.warning",
        actions=[{"type": "add_tag", "value": "sla-risk"}],
    )
    await rule(
        tenant,
        trigger="sla.breached",
        conditions=[{"field": "sla_target", "operator": "is", "value": "resolution"}],
        actions=[{"type": "set_priority", "value": "Critical"}],
    )
    ticket = await new_ticket(tenant)
    due = await first_due(tenant, ticket["id"])
    await check_due(app_runtime, at=due - WARN_BEFORE + 1)
    warned = data(await tenant.get(f"/v1/tickets/{ticket['id']}"))
    assert warned["tags"] == ["sla-risk"] and warned["priority"] == "Medium"
    await check_due(app_runtime, at=due + 1)  # the first response: not the rule's target
    assert data(await tenant.get(f"/v1/tickets/{ticket['id']}"))["priority"] == "Medium"
    resolution_due = data(await tenant.get(f"/v1/tickets/{ticket['id']}"))["resolutionDueAt"]
    await check_due(app_runtime, at=resolution_due + 1)
    late = data(await tenant.get(f"/v1/tickets/{ticket['id']}"))
    assert late["priority"] == "Critical"
    assert late["slaBreached"] == ["firstResponse", "resolution"]


async def test_a_rule_change_that_causes_a_breach(
    tenant: Tenant, app_runtime: Runtime, events: list[Any]
) -> None:
    """A rule raises the priority into a stricter policy whose target has already passed:
    the breach carries the rule in its chain, and a breach rule runs on it."""
    await tenant.post(
        "/v1/sla-policies",
        json={
            "name": "Urgent",
            "match": {"priority": "Critical"},
            "targets": {"firstResponseMinutes": 1},
        },
    )
    escalate = await rule(
        tenant,
        trigger="ticket.updated",
        conditions=[{"field": "tag", "operator": "is", "value": "escalate"}],
        actions=[{"type": "set_priority", "value": "Critical"}],
    )
    on_breach = await rule(
        tenant,
        trigger="sla.breached",
        actions=[{"type": "add_tag", "value": "breached"}],
    )
    ticket = await new_ticket(tenant)
    async with app_runtime.db.transaction() as session:  # opened an hour ago
        await session.execute(
            update(Ticket).where(Ticket.id == ticket["id"]).values(created_at=now() - 3600)
        )
    data(await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"tags": ["escalate"]}))
    final = data(await tenant.get(f"/v1/tickets/{ticket['id']}"))
    assert final["priority"] == "Critical" and final["slaBreached"] == ["firstResponse"]
    assert final["tags"] == ["escalate", "breached"]
    breach = [
        e for e in events if e.type == "sla.breached" and e.payload["ticketId"] == ticket["id"]
    ]
    assert len(breach) == 1 and breach[0].chain == [escalate["id"]]
    ran = [a for a in await activities(tenant, ticket["id"]) if a["verb"] == "automation.ran"]
    assert sorted(a["actor"]["id"] for a in ran) == sorted([escalate["id"], on_breach["id"]])


async def test_sla_triggers_are_validated(tenant: Tenant) -> None:
    for trigger in ("sla.warning", "sla.breached"):
        made = await rule(tenant, trigger=trigger, actions=[{"type": "add_tag", "value": "x"}])
        assert made["trigger"] == trigger and made["triggerConfig"] is None
    listed = data(await tenant.get("/v1/automations", params={"trigger": "sla.breached"}))
    assert [r["trigger"] for r in listed] == ["sla.breached"]
    base = {"name": "r", "actions": [{"type": "add_tag", "value": "x"}]}
    for body, path in (
        (
            {
                "trigger": "ticket.created",
                "conditions": [{"field": "sla_target", "operator": "is", "value": "resolution"}],
            },
            "conditions.0.field",
        ),
        (
            {
                "trigger": "sla.breached",
                "conditions": [{"field": "sla_target", "operator": "is", "value": "response"}],
            },
            "conditions.0.value",
        ),
        (
            {
                "trigger": "sla.breached",
                "conditions": [{"field": "sla_target", "operator": "contains", "value": "first"}],
            },
            "conditions.0.operator",
        ),
        (
            {"trigger": "sla.warning", "triggerConfig": {"hours": 1, "field": "created"}},
            "triggerConfig",
        ),
        ({"trigger": "sla.late"}, "trigger"),
    ):
        failure = error(
            await tenant.post("/v1/automations", json={**base, **body}), 422, "VALIDATION_ERROR"
        )
        assert path in [d["path"] for d in failure["details"]], (body, failure)
    # moving a rule with an sla_target condition off the SLA triggers is refused too
    made = await rule(
        tenant,
        trigger="sla.breached",
        conditions=[{"field": "sla_target", "operator": "is_not", "value": "nextResponse"}],
        actions=[{"type": "add_tag", "value": "x"}],
    )
    error(
        await tenant.patch(f"/v1/automations/{made['id']}", json={"trigger": "ticket.updated"}),
        422,
        "VALIDATION_ERROR",
    )
    moved = data(
        await tenant.patch(f"/v1/automations/{made['id']}", json={"trigger": "sla.warning"})
    )
    assert moved["trigger"] == "sla.warning"


async def test_dry_run_of_sla_rules(tenant: Tenant, app_runtime: Runtime) -> None:
    data(await tenant.post("/v1/sla-policies", json=POLICY), 201)
    made = await rule(
        tenant,
        trigger="sla.breached",
        conditions=[{"field": "sla_target", "operator": "is", "value": "firstResponse"}],
        actions=[{"type": "set_priority", "value": "High"}],
    )
    ticket = await new_ticket(tenant)
    path = f"/v1/automations/{made['id']}/dry-run"
    before = data(await tenant.post(path, json={"ticketId": ticket["id"]}))
    assert before["triggerSatisfied"] is False and before["matched"] is False
    assert before["slaTarget"] is None and before["conditions"][0]["actual"] is None
    assert before["actions"] == [
        {"type": "set_priority", "value": "High", "effect": "priority: Medium → High"}
    ]
    await check_due(app_runtime, at=await first_due(tenant, ticket["id"]) + 1)
    # dry-run changes nothing; on the breached ticket the rule would run
    ticket_id = ticket["id"]
    after = data(await tenant.post(path, json={"ticketId": ticket_id}))
    assert after["triggerSatisfied"] is True and after["matched"] is True
    assert after["slaTarget"] == "firstResponse" and after["conditions"][0]["matched"] is True
    other = data(await tenant.post(path, json={"ticketId": ticket_id, "slaTarget": "resolution"}))
    assert other["triggerSatisfied"] is False and other["conditions"][0]["matched"] is False
    error(
        await tenant.post(path, json={"ticketId": ticket_id, "slaTarget": "later"}),
        422,
        "VALIDATION_ERROR",
    )
