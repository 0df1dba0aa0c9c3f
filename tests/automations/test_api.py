"""/v1/automations: the wire shape, strict validation, references, roles, order, dry-run."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from enque.activity.models import Activity
from enque.core.runtime import Runtime
from tests.automations.support import FakeTickets, add_agent, add_team, token_for
from tests.support.api import Tenant, data, error

URGENT = {
    "name": "Urgent to Tier 2",
    "trigger": "ticket.created",
    "match": "all",
    "isActive": True,
    "conditions": [
        {"field": "subject", "operator": "contains", "value": "urgent"},
        {"field": "customer_domain", "operator": "is", "value": "initech.test"},
    ],
    "actions": [
        {"type": "set_priority", "value": "Critical"},
        {"type": "add_tag", "value": "vip"},
    ],
}


def rule(**overrides: Any) -> dict[str, Any]:
    return {**URGENT, **overrides}


async def create(tenant: Tenant, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return data(await tenant.post("/v1/automations", json=body or rule()), 201)  # type: ignore[no-any-return]


async def test_create_read_list(tenant: Tenant) -> None:
    made = await create(tenant)
    assert made["name"] == "Urgent to Tier 2" and made["trigger"] == "ticket.created"
    assert made["conditions"] == URGENT["conditions"]
    assert made["actions"] == URGENT["actions"]
    assert made["isActive"] is True and made["position"] == 0 and made["runCount"] == 0
    assert made["createdById"] == tenant.agent_id and made["lastRunAt"] is None
    assert made["triggerConfig"] is None
    assert data(await tenant.get(f"/v1/automations/{made['id']}")) == made
    listed = await tenant.get("/v1/automations")
    assert [r["id"] for r in data(listed)] == [made["id"]]
    assert listed.json()["meta"]["nextCursor"] is None


async def test_time_rule_shape(tenant: Tenant) -> None:
    made = await create(
        tenant,
        rule(
            name="Close waiting tickets",
            trigger="time.elapsed",
            triggerConfig={"hours": 72, "field": "updated"},
            conditions=[{"field": "status", "operator": "is", "value": "With User"}],
            actions=[{"type": "set_status", "value": "Closed"}],
        ),
    )
    assert made["triggerConfig"] == {"hours": 72, "field": "updated"}
    only_time = data(await tenant.get("/v1/automations", params={"trigger": "time.elapsed"}))
    assert [r["id"] for r in only_time] == [made["id"]]


INVALID = [
    ({"conditions": [{"field": "colour", "operator": "is", "value": "x"}]}, "conditions.0.field"),
    (
        {"conditions": [{"field": "subject", "operator": "equals", "value": "x"}]},
        "conditions.0.operator",
    ),
    (
        {"conditions": [{"field": "subject", "operator": "gt", "value": "x"}]},
        "conditions.0.operator",
    ),
    (
        {"conditions": [{"field": "status", "operator": "contains", "value": "Op"}]},
        "conditions.0.operator",
    ),
    (
        {"conditions": [{"field": "priority", "operator": "is", "value": "urgent"}]},
        "conditions.0.value",
    ),
    (
        {"conditions": [{"field": "status", "operator": "is", "value": "open"}]},
        "conditions.0.value",
    ),
    ({"conditions": [{"field": "team", "operator": "is", "value": 5}]}, "conditions.0.value"),
    (
        {"conditions": [{"field": "hours_since_created", "operator": "gt", "value": "3"}]},
        "conditions.0.value",
    ),
    (
        {"conditions": [{"field": "hours_since_created", "operator": "gt", "value": True}]},
        "conditions.0.value",
    ),
    (
        {"conditions": [{"field": "subject", "operator": "contains", "value": ""}]},
        "conditions.0.value",
    ),
    (
        {"conditions": [{"field": "subject", "operator": "matches", "value": "(a"}]},
        "conditions.0.value",
    ),
    (
        {"conditions": [{"field": "subject", "operator": "matches", "value": r"(a)\1"}]},
        "conditions.0.value",
    ),
    (
        {"conditions": [{"field": "subject", "operator": "is", "value": "x", "extra": 1}]},
        "conditions.0.extra",
    ),
    ({"actions": [{"type": "explode"}]}, "actions.0.type"),
    ({"actions": [{"type": "set_status", "value": "Done"}]}, "actions.0.value"),
    ({"actions": [{"type": "add_tag", "value": ["x"]}]}, "actions.0.value"),
    ({"actions": [{"type": "notify_agents", "value": []}]}, "actions.0.value"),
    ({"actions": [{"type": "stop", "value": "now"}]}, "actions.0.value"),
    ({"actions": [{"type": "stop"}, {"type": "add_tag", "value": "x"}]}, "actions.0.type"),
    ({"actions": []}, "actions"),
    ({"trigger": "ticket.deleted"}, "trigger"),
    ({"trigger": "time.elapsed"}, "triggerConfig"),
    ({"triggerConfig": {"hours": 2, "field": "updated"}}, "triggerConfig"),
    (
        {"trigger": "time.elapsed", "triggerConfig": {"hours": 0, "field": "updated"}},
        "triggerConfig.hours",
    ),
    (
        {"trigger": "time.elapsed", "triggerConfig": {"hours": 2, "field": "due"}},
        "triggerConfig.field",
    ),
    ({"match": "some"}, "match"),
    ({"colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("change", "path"), INVALID)
async def test_validation_names_the_path(tenant: Tenant, change: dict[str, Any], path: str) -> None:
    response = await tenant.post("/v1/automations", json=rule(**change))
    err = error(response, 422, "VALIDATION_ERROR")
    assert path in [d["path"] for d in err["details"]], err


async def test_safe_patterns_are_accepted(tenant: Tenant) -> None:
    """Patterns that are catastrophic for backtracking engines run in linear time in RE2."""
    made = await create(
        tenant, rule(conditions=[{"field": "body", "operator": "matches", "value": "^(a+)+$"}])
    )
    assert made["conditions"][0]["value"] == "^(a+)+$"


async def test_references_must_be_in_the_workspace(
    tenant: Tenant, make_tenant: Any, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = await make_tenant()
    foreign_agent = await add_agent(app_runtime, other.workspace_id)
    foreign_team = await add_team(app_runtime, other.workspace_id, [foreign_agent])
    mine = await add_agent(app_runtime, tenant.workspace_id)
    team = await add_team(app_runtime, tenant.workspace_id, [mine])
    cases = [
        ({"type": "set_team", "value": foreign_team}, "actions.0.value"),
        ({"type": "assign_round_robin", "value": foreign_team}, "actions.0.value"),
        ({"type": "set_assignee", "value": foreign_agent}, "actions.0.value"),
        ({"type": "notify_agents", "value": [mine, foreign_agent]}, "actions.0.value.1"),
        ({"type": "set_category", "value": "no-such-category"}, "actions.0.value"),
        ({"type": "send_canned_reply", "value": "no-such-reply"}, "actions.0.value"),
    ]
    for action, path in cases:
        err = error(
            await tenant.post("/v1/automations", json=rule(actions=[action])),
            422,
            "VALIDATION_ERROR",
        )
        assert [d["path"] for d in err["details"]] == [path], (action, err)
    condition = {"field": "assignee", "operator": "is", "value": foreign_agent}
    err = error(
        await tenant.post("/v1/automations", json=rule(conditions=[condition])),
        422,
        "VALIDATION_ERROR",
    )
    assert err["details"][0]["path"] == "conditions.0.value"

    ok_actions = [
        {"type": "set_team", "value": team},
        {"type": "assign_round_robin", "value": team},
        {"type": "set_assignee", "value": mine},
        {"type": "notify_agents", "value": [mine, tenant.agent_id]},
        {"type": "set_assignee", "value": None},
    ]
    made = await create(tenant, rule(actions=ok_actions))
    assert made["actions"] == ok_actions

    # other domains plug their lookups in
    async def categories(session: Any, workspace_id: str, ids: set[str]) -> set[str]:
        return {"cat-1"} & ids if workspace_id == tenant.workspace_id else set()

    monkeypatch.setitem(app_runtime.services, "lookups", {"category": categories})
    await create(tenant, rule(actions=[{"type": "set_category", "value": "cat-1"}]))
    err = error(
        await other.post(
            "/v1/automations", json=rule(actions=[{"type": "set_category", "value": "cat-1"}])
        ),
        422,
        "VALIDATION_ERROR",
    )
    assert err["details"][0]["path"] == "actions.0.value"


async def test_roles(tenant: Tenant, app_runtime: Runtime) -> None:
    made = await create(tenant)
    agent = await add_agent(app_runtime, tenant.workspace_id, role="agent")
    manager = await add_agent(app_runtime, tenant.workspace_id, role="manager")
    agent_token = token_for(app_runtime, agent, tenant.workspace_id, "agent")
    manager_token = token_for(app_runtime, manager, tenant.workspace_id, "manager")
    path = f"/v1/automations/{made['id']}"
    assert data(await tenant.get("/v1/automations", token=agent_token))[0]["id"] == made["id"]
    assert data(await tenant.get(path, token=agent_token))["id"] == made["id"]
    error(await tenant.post("/v1/automations", json=rule(), token=agent_token), 403, "FORBIDDEN")
    error(await tenant.patch(path, json={"name": "x"}, token=agent_token), 403, "FORBIDDEN")
    error(await tenant.delete(path, token=agent_token), 403, "FORBIDDEN")
    data(await tenant.post("/v1/automations", json=rule(), token=manager_token), 201)
    assert data(await tenant.patch(path, json={"name": "y"}, token=manager_token))["name"] == "y"
    error(await tenant.http.get("/v1/automations"), 401, "UNAUTHORIZED")


async def test_other_workspaces_rules_are_not_found(tenant: Tenant, make_tenant: Any) -> None:
    other = await make_tenant()
    theirs = await create(other)
    path = f"/v1/automations/{theirs['id']}"
    error(await tenant.get(path), 404, "NOT_FOUND")
    error(await tenant.patch(path, json={"name": "mine"}), 404, "NOT_FOUND")
    error(await tenant.delete(path), 404, "NOT_FOUND")
    error(await tenant.post(f"{path}/dry-run", json={"ticketId": "x"}), 404, "NOT_FOUND")
    error(await tenant.get("/v1/automations/not-an-id"), 404, "NOT_FOUND")
    assert data(await tenant.get("/v1/automations")) == []
    assert data(await other.get(path))["name"] == URGENT["name"]


async def test_patch_and_reorder(tenant: Tenant) -> None:
    a, b, c = [await create(tenant, rule(name=n)) for n in "abc"]
    assert [a["position"], b["position"], c["position"]] == [0, 1, 2]

    async def order() -> list[str]:
        return [r["name"] for r in data(await tenant.get("/v1/automations"))]

    moved = data(await tenant.patch(f"/v1/automations/{c['id']}", json={"position": 0}))
    assert moved["position"] == 0 and await order() == ["c", "a", "b"]
    await create(tenant, rule(name="d", position=1))
    assert await order() == ["c", "d", "a", "b"]
    data(await tenant.patch(f"/v1/automations/{c['id']}", json={"position": 99}))
    assert await order() == ["d", "a", "b", "c"]
    positions = [r["position"] for r in data(await tenant.get("/v1/automations"))]
    assert positions == [0, 1, 2, 3]

    changed = data(
        await tenant.patch(f"/v1/automations/{a['id']}", json={"name": "a2", "isActive": False})
    )
    assert changed["name"] == "a2" and changed["isActive"] is False
    assert changed["conditions"] == URGENT["conditions"]  # untouched
    new_conditions = [{"field": "priority", "operator": "gt", "value": "Medium"}]
    changed = data(
        await tenant.patch(f"/v1/automations/{a['id']}", json={"conditions": new_conditions})
    )
    assert changed["conditions"] == new_conditions and changed["actions"] == URGENT["actions"]
    err = error(
        await tenant.patch(f"/v1/automations/{a['id']}", json={"name": None}),
        422,
        "VALIDATION_ERROR",
    )
    assert err["details"][0]["path"] == "name"
    err = error(
        await tenant.patch(f"/v1/automations/{a['id']}", json={"trigger": "time.elapsed"}),
        422,
        "VALIDATION_ERROR",
    )
    assert err["details"][0]["path"] == "triggerConfig"
    timed = data(
        await tenant.patch(
            f"/v1/automations/{a['id']}",
            json={"trigger": "time.elapsed", "triggerConfig": {"hours": 1.5, "field": "created"}},
        )
    )
    assert timed["triggerConfig"] == {"hours": 1.5, "field": "created"}
    back = data(
        await tenant.patch(f"/v1/automations/{a['id']}", json={"trigger": "ticket.updated"})
    )
    assert back["triggerConfig"] is None


async def test_delete_is_soft_and_audited(tenant: Tenant, app_runtime: Runtime) -> None:
    made = await create(tenant)
    data(await tenant.patch(f"/v1/automations/{made['id']}", json={"name": "Renamed"}))
    response = await tenant.delete(f"/v1/automations/{made['id']}")
    assert response.status_code == 204 and response.content == b""
    error(await tenant.get(f"/v1/automations/{made['id']}"), 404, "NOT_FOUND")
    error(await tenant.delete(f"/v1/automations/{made['id']}"), 404, "NOT_FOUND")
    async with app_runtime.db.session(write=False) as session:
        rows = (
            (
                await session.execute(
                    select(Activity)
                    .where(
                        Activity.workspace_id == tenant.workspace_id,
                        Activity.subject_id == made["id"],
                    )
                    .order_by(Activity.id)
                )
            )
            .scalars()
            .all()
        )
    assert [r.verb for r in rows] == [
        "automation.created",
        "automation.updated",
        "automation.deleted",
    ]
    assert all(r.actor_type == "agent" and r.actor_id == tenant.agent_id for r in rows)
    assert rows[1].before == {"name": "Urgent to Tier 2"} and rows[1].after == {"name": "Renamed"}


async def test_dry_run_explains(tenant: Tenant, fake_tickets: FakeTickets) -> None:
    made = await create(tenant)
    ticket = fake_tickets.add(
        tenant.workspace_id,
        subject="Urgent: down",
        customer_email="bob@initech.test",
        tags=("vip",),
    )
    result = data(
        await tenant.post(f"/v1/automations/{made['id']}/dry-run", json={"ticketId": ticket.id})
    )
    assert result["matched"] is True and result["triggerSatisfied"] is True
    assert result["ticketId"] == ticket.id and result["stopsFurtherRules"] is False
    assert [(c["field"], c["actual"], c["matched"]) for c in result["conditions"]] == [
        ("subject", "Urgent: down", True),
        ("customer_domain", "initech.test", True),
    ]
    assert [a["effect"] for a in result["actions"]] == [
        "priority: Medium → Critical",
        "no change (tag 'vip' already present)",
    ]
    assert fake_tickets.calls == []  # nothing happened

    other = fake_tickets.add(tenant.workspace_id, subject="Hello", customer_email="a@b.test")
    result = data(
        await tenant.post(f"/v1/automations/{made['id']}/dry-run", json={"ticketId": other.id})
    )
    assert result["matched"] is False
    assert [c["matched"] for c in result["conditions"]] == [False, False]


async def test_dry_run_of_time_rule(tenant: Tenant, fake_tickets: FakeTickets) -> None:
    made = await create(
        tenant,
        rule(
            trigger="time.elapsed",
            triggerConfig={"hours": 2, "field": "created"},
            conditions=[{"field": "status", "operator": "is", "value": "Unread"}],
            actions=[{"type": "set_priority", "value": "High"}, {"type": "stop"}],
        ),
    )
    ticket = fake_tickets.add(tenant.workspace_id, status="Unread")
    result = data(
        await tenant.post(f"/v1/automations/{made['id']}/dry-run", json={"ticketId": ticket.id})
    )
    assert result["conditions"][0]["matched"] is True
    assert result["triggerSatisfied"] is False and result["matched"] is False
    assert result["stopsFurtherRules"] is True


async def test_dry_run_ticket_must_be_in_the_workspace(
    tenant: Tenant, make_tenant: Any, fake_tickets: FakeTickets
) -> None:
    made = await create(tenant)
    other = await make_tenant()
    theirs = fake_tickets.add(other.workspace_id, subject="urgent")
    for ticket_id in (theirs.id, "nope"):
        error(
            await tenant.post(
                f"/v1/automations/{made['id']}/dry-run", json={"ticketId": ticket_id}
            ),
            404,
            "NOT_FOUND",
        )


async def test_dry_run_without_the_tickets_domain(tenant: Tenant) -> None:
    made = await create(tenant)
    error(
        await tenant.post(f"/v1/automations/{made['id']}/dry-run", json={"ticketId": "x"}),
        404,
        "NOT_FOUND",
    )
