"""A change of a ticket's custom field values runs the `ticket.updated` rules: once per change,
alone or with other fields in one PATCH, never for values as they were, within the loop
guards, and only in the ticket's workspace."""

from __future__ import annotations

from typing import Any

from enque.core.events import Event
from tests.automations.test_custom_conditions import cond, define
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import new_ticket


async def gold_rule(tenant: Tenant, *actions: dict[str, Any]) -> str:
    body = {
        "name": "gold plan",
        "trigger": "ticket.updated",
        "conditions": [cond("ticket.custom.plan", "is", "gold")],
        "actions": list(actions) or [{"type": "add_tag", "value": "gold"}],
    }
    return str(data(await tenant.post("/v1/automations", json=body), 201)["id"])


async def runs(tenant: Tenant, rule_id: str) -> int:
    return int(data(await tenant.get(f"/v1/automations/{rule_id}"))["runCount"])


async def ran_on(tenant: Tenant, ticket_id: str) -> list[dict[str, Any]]:
    activity = data(await tenant.get(f"/v1/tickets/{ticket_id}/activities"))
    return [a for a in activity if a["verb"] == "automation.ran"]


def updates(events: list[Event], ticket_id: str, depth: int | None = None) -> list[Event]:
    """The ticket's `ticket.updated` events (of one depth: 0 a person's, 1 the rules')."""
    return [
        e
        for e in events
        if e.type == "ticket.updated" and e.payload["id"] == ticket_id and depth in (None, e.depth)
    ]


async def test_a_values_only_change_runs_the_rules_once(
    tenant: Tenant, events: list[Event]
) -> None:
    await define(tenant, "ticket", "plan", "dropdown", options=["gold", "silver"])
    rule = await gold_rule(tenant)
    ticket = await new_ticket(tenant)
    path = f"/v1/tickets/{ticket['id']}"

    data(await tenant.patch(f"{path}/custom-fields", json={"customFields": {"plan": "gold"}}))
    assert await runs(tenant, rule) == 1
    assert len(await ran_on(tenant, ticket["id"])) == 1
    assert data(await tenant.get(path))["tags"] == ["gold"]
    [first] = updates(events, ticket["id"], depth=0)
    [by_rule] = updates(events, ticket["id"], depth=1)
    assert first.payload["changes"] == {"customFields.plan": [None, "gold"]}
    assert by_rule.payload["changes"] == {"tags": [[], ["gold"]]}
    assert not [e for e in events if e.type == "custom_fields.updated"]

    # the same values again: nothing changed, nothing runs
    data(await tenant.patch(f"{path}/custom-fields", json={"customFields": {"plan": "gold"}}))
    data(await tenant.patch(path, json={"customFields": {"plan": "gold"}}))
    assert await runs(tenant, rule) == 1
    assert len(updates(events, ticket["id"])) == 2


async def test_fields_and_values_in_one_patch_run_the_rules_once(
    tenant: Tenant, events: list[Event]
) -> None:
    await define(tenant, "ticket", "plan", "dropdown", options=["gold", "silver"])
    rule = await gold_rule(tenant, {"type": "add_note", "value": "Gold customer"})
    ticket = await new_ticket(tenant)
    path = f"/v1/tickets/{ticket['id']}"

    data(
        await tenant.patch(
            path, json={"priority": "High", "subject": "Gold", "customFields": {"plan": "gold"}}
        )
    )
    assert await runs(tenant, rule) == 1
    [only] = updates(events, ticket["id"], depth=0)
    assert only.payload["ticket"]["version"] == ticket["version"] + 1  # one update
    assert only.payload["changes"] == {
        "priority": ["Medium", "High"],
        "subject": ["Printer on fire", "Gold"],
        "customFields.plan": [None, "gold"],
    }
    assert len(await ran_on(tenant, ticket["id"])) == 1
    # a change of other fields alone runs the rule again: it tests the ticket as it is
    data(await tenant.patch(path, json={"priority": "Low"}))
    assert await runs(tenant, rule) == 2


async def test_rules_that_answer_each_other_run_once(tenant: Tenant, events: list[Event]) -> None:
    await define(tenant, "ticket", "plan", "dropdown", options=["gold", "silver"])
    raise_it = await gold_rule(tenant, {"type": "set_priority", "value": "Critical"})
    lower = {
        "name": "no critical",
        "trigger": "ticket.updated",
        "conditions": [cond("priority", "is", "Critical")],
        "actions": [{"type": "set_priority", "value": "Low"}],
    }
    lower_it = data(await tenant.post("/v1/automations", json=lower), 201)["id"]
    ticket = await new_ticket(tenant)
    path = f"/v1/tickets/{ticket['id']}"

    data(await tenant.patch(f"{path}/custom-fields", json={"customFields": {"plan": "gold"}}))
    assert (await runs(tenant, raise_it), await runs(tenant, lower_it)) == (1, 1)
    assert data(await tenant.get(path))["priority"] == "Low"
    assert len(updates(events, ticket["id"], depth=0)) == 1
    chained = [e for e in updates(events, ticket["id"]) if e.depth]
    assert [sorted(e.chain) for e in chained] == [sorted([raise_it, lower_it])]


async def test_only_the_tickets_workspace_runs_its_rules(
    tenant: Tenant, make_tenant: Any, events: list[Event]
) -> None:
    other = await make_tenant()
    for each in (tenant, other):
        await define(each, "ticket", "plan", "dropdown", options=["gold", "silver"])
    mine, theirs = await gold_rule(tenant), await gold_rule(other)
    ticket = await new_ticket(tenant)
    path = f"/v1/tickets/{ticket['id']}/custom-fields"

    error(await other.patch(path, json={"customFields": {"plan": "gold"}}), 404, "NOT_FOUND")
    assert await runs(tenant, mine) == 0
    data(await tenant.patch(path, json={"customFields": {"plan": "gold"}}))
    assert (await runs(tenant, mine), await runs(other, theirs)) == (1, 0)
    assert {e.workspace_id for e in events if e.type == "ticket.updated"} == {tenant.workspace_id}
