"""Conditions on custom fields of tickets, customers and companies: evaluation per type, the
check against the workspace's definitions, facts loaded in batch, deleted fields and options,
and time rules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, select, update

from enque.activity.models import Activity
from enque.automations.custom import holds
from enque.automations.timerules import run_time_rules
from enque.core.db import now
from enque.core.runtime import Runtime
from enque.customers.models import User
from enque.tickets.automation import load_ticket_facts
from enque.tickets.models import Ticket
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import new_ticket

NOON = int(datetime(2027, 3, 10, 12, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("operator", "expected", "actual", "outcome"),
    [
        ("is_empty", None, None, True),
        ("is_empty", None, [], True),
        ("is_empty", None, False, False),  # an unticked checkbox has a value
        ("is_not_empty", None, "x", True),
        ("is_true", None, True, True),
        ("is_false", None, None, True),  # never ticked counts as false
        ("is_false", None, True, False),
        ("gt", 10, 12.5, True),
        ("lte", 10, 10, True),
        ("lt", 10, None, False),
        ("is", 3, 3.0, True),
        ("is_not", 3, None, True),
        ("before", "2027-03-11", "2027-03-10", True),
        ("after", "2027-03-11", "2027-03-11", False),
        ("within_next", 7, "2027-03-17", True),
        ("within_next", 7, "2027-03-18", False),
        ("within_next", 7, "2027-03-09", False),
        ("within_last", 1, "2027-03-09", True),
        ("within_last", 1, None, False),
        ("in", ["Gold", "silver"], "gold", True),
        ("not_in", ["gold"], None, True),
        ("includes_any", ["sso", "api"], ["api", "audit"], True),
        ("includes_all", ["sso", "api"], ["api", "audit"], False),
        ("includes_none", ["sso"], ["api"], True),
        ("includes_any", ["sso"], None, False),
    ],
)
def test_operators(operator: str, expected: Any, actual: Any, outcome: bool) -> None:
    assert holds(operator, expected, actual, NOON) is outcome


def test_text_operators_are_left_to_the_text_rules() -> None:
    assert holds("contains", "abc", "xabcx", NOON) is None
    assert holds("is", "gold", "gold", NOON) is None


async def define(tenant: Tenant, entity: str, key: str, type: str, **extra: Any) -> str:
    body = {"entity": entity, "key": key, "label": key.title(), "type": type, **extra}
    return str(data(await tenant.post("/v1/custom-fields", json=body), 201)["id"])


async def define_all(tenant: Tenant) -> dict[str, str]:
    return {
        "summary": await define(tenant, "ticket", "summary", "text"),
        "seats": await define(tenant, "ticket", "seats", "number"),
        "renewal": await define(tenant, "ticket", "renewal", "date"),
        "plan": await define(tenant, "ticket", "plan", "dropdown", options=["gold", "silver"]),
        "addons": await define(
            tenant, "ticket", "addons", "multiselect", options=["sso", "api", "audit"]
        ),
        "vip": await define(tenant, "ticket", "vip", "checkbox"),
        "tier": await define(tenant, "user", "tier", "dropdown", options=["free", "paid"]),
        "region": await define(tenant, "company", "region", "text"),
    }


def rule_body(*conditions: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "custom",
        "trigger": "ticket.created",
        "conditions": list(conditions),
        "actions": [{"type": "add_tag", "value": "matched"}],
        **extra,
    }


def cond(field: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "operator": operator, "value": value}


VALID = [
    cond("ticket.custom.summary", "contains", " refund "),
    cond("ticket.custom.seats", "gte", 10),
    cond("ticket.custom.renewal", "before", "2027-01-31"),
    cond("ticket.custom.renewal", "within_next", 30),
    cond("ticket.custom.plan", "in", ["gold", "gold"]),
    cond("ticket.custom.addons", "includes_all", ["sso", "api"]),
    cond("ticket.custom.vip", "is_true"),
    cond("customer.custom.tier", "is", "paid"),
    cond("company.custom.region", "is_empty"),
]


async def test_rules_name_custom_fields_that_fit(tenant: Tenant) -> None:
    await define_all(tenant)
    made = data(await tenant.post("/v1/automations", json=rule_body(*VALID)), 201)
    stored = made["conditions"]
    assert stored[0]["value"] == "refund" and stored[4]["value"] == ["gold"]
    assert [c["field"] for c in stored] == [c["field"] for c in VALID]


@pytest.mark.parametrize(
    ("condition", "path"),
    [
        (cond("ticket.custom.nope", "is", "x"), "conditions.0.field"),
        (cond("ticket.custom.Bad-Key", "is", "x"), "conditions.0.field"),
        (cond("customer.custom.plan", "is", "gold"), "conditions.0.field"),  # a ticket field
        (cond("ticket.custom.summary", "gt", 3), "conditions.0.operator"),
        (cond("ticket.custom.seats", "contains", "3"), "conditions.0.operator"),
        (cond("ticket.custom.plan", "includes_any", ["gold"]), "conditions.0.operator"),
        (cond("ticket.custom.addons", "is", "sso"), "conditions.0.operator"),
        (cond("ticket.custom.vip", "is", True), "conditions.0.operator"),
        (cond("ticket.custom.plan", "is", "bronze"), "conditions.0.value"),
        (cond("ticket.custom.plan", "in", []), "conditions.0.value"),
        (cond("ticket.custom.seats", "gt", "ten"), "conditions.0.value"),
        (cond("ticket.custom.renewal", "after", "31/01/2027"), "conditions.0.value"),
        (cond("ticket.custom.renewal", "within_last", -1), "conditions.0.value"),
        (cond("ticket.custom.vip", "is_true", True), "conditions.0.value"),
        (cond("ticket.custom.summary", "matches", "("), "conditions.0.value"),
        (cond("subject", "gte", 3), "conditions.0.operator"),  # built-in fields keep theirs
    ],
)
async def test_rules_that_do_not_fit_are_refused(
    tenant: Tenant, condition: dict[str, Any], path: str
) -> None:
    await define_all(tenant)
    err = error(
        await tenant.post("/v1/automations", json=rule_body(condition)), 422, "VALIDATION_ERROR"
    )
    assert path in [d["path"] for d in err["details"]], err
    assert data(await tenant.get("/v1/automations")) == []


async def test_other_workspaces_fields_are_unknown(tenant: Tenant, make_tenant: Any) -> None:
    other = await make_tenant()
    await define_all(other)
    err = error(
        await tenant.post("/v1/automations", json=rule_body(VALID[1])), 422, "VALIDATION_ERROR"
    )
    assert err["details"][0]["path"] == "conditions.0.field"


async def test_rules_see_ticket_customer_and_company_fields(tenant: Tenant) -> None:
    await define_all(tenant)
    company = data(
        await tenant.post("/v1/companies", json={"name": "Acme", "emailDomains": ["acme.test"]}),
        201,
    )
    data(
        await tenant.patch(
            f"/v1/companies/{company['id']}/custom-fields",
            json={"customFields": {"region": "EMEA north"}},
        )
    )
    paid = data(await tenant.post("/v1/users", json={"email": "pat@acme.test"}), 201)
    data(
        await tenant.patch(
            f"/v1/users/{paid['id']}/custom-fields", json={"customFields": {"tier": "paid"}}
        )
    )
    conditions = [
        cond("ticket.custom.seats", "gt", 10),
        cond("ticket.custom.addons", "includes_any", ["sso"]),
        cond("customer.custom.tier", "is", "paid"),
        cond("company.custom.region", "starts_with", "emea"),
    ]
    data(await tenant.post("/v1/automations", json=rule_body(*conditions)), 201)
    values = {"seats": 25, "addons": ["sso", "audit"]}
    hit = await new_ticket(tenant, userId=paid["id"], customFields=values)
    few = await new_ticket(tenant, userId=paid["id"], customFields={**values, "seats": 5})
    stranger = await new_ticket(tenant, customFields=values)
    tags = {
        t["id"]: data(await tenant.get(f"/v1/tickets/{t['id']}"))["tags"]
        for t in (hit, few, stranger)
    }
    assert tags == {hit["id"]: ["matched"], few["id"]: [], stranger["id"]: []}

    rule_id = data(await tenant.get("/v1/automations"))[0]["id"]
    dry = data(
        await tenant.post(f"/v1/automations/{rule_id}/dry-run", json={"ticketId": stranger["id"]})
    )
    assert [(c["actual"], c["matched"]) for c in dry["conditions"]] == [
        (25, True),
        (["sso", "audit"], True),
        (None, False),
        (None, False),
    ]


async def test_facts_of_many_tickets_take_a_fixed_number_of_queries(
    tenant: Tenant, app_runtime: Runtime, make_tenant: Any
) -> None:
    await define_all(tenant)

    async def count(ids: list[str], custom: bool = True) -> int:
        seen: list[str] = []

        def record(*args: Any) -> None:
            seen.append(args[2])

        engine = app_runtime.db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", record)
        try:
            async with app_runtime.db.session(write=False) as session:
                facts = await load_ticket_facts(session, tenant.workspace_id, ids, custom=custom)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert all(facts[i].custom == ({"ticket.custom.seats": 3} if custom else {}) for i in ids)
        return len(seen)

    ids = [(await new_ticket(tenant, customFields={"seats": 3}))["id"] for _ in range(6)]
    assert await count(ids[:2]) == await count(ids)
    # rules that name no custom field do not pay for them
    assert await count(ids, custom=False) < await count(ids)
    other = await make_tenant()
    async with app_runtime.db.session(write=False) as session:
        assert await load_ticket_facts(session, other.workspace_id, ids) == {}


async def activity_of(app_runtime: Runtime, rule_id: str) -> list[Activity]:
    async with app_runtime.db.session(write=False) as session:
        stmt = select(Activity).where(Activity.subject_id == rule_id)
        return list((await session.execute(stmt)).scalars())


async def test_deleting_a_field_switches_its_rules_off(
    tenant: Tenant, app_runtime: Runtime
) -> None:
    fields = await define_all(tenant)
    naming = data(await tenant.post("/v1/automations", json=rule_body(VALID[1])), 201)
    other = data(await tenant.post("/v1/automations", json=rule_body(VALID[6])), 201)
    assert (await tenant.delete(f"/v1/custom-fields/{fields['seats']}")).status_code == 204

    rules = {r["id"]: r for r in data(await tenant.get("/v1/automations"))}
    assert rules[naming["id"]]["isActive"] is False
    assert rules[naming["id"]]["conditions"] == naming["conditions"]  # kept to be corrected
    assert rules[other["id"]]["isActive"] is True
    [off] = [a for a in await activity_of(app_runtime, naming["id"]) if "deactivated" in a.verb]
    assert off.after["field"] == "ticket.custom.seats"
    assert off.after["problems"][0]["path"] == "conditions.0.field"

    # it cannot be switched on again as it is; corrected, it can
    path = f"/v1/automations/{naming['id']}"
    err = error(await tenant.patch(path, json={"isActive": True}), 422, "VALIDATION_ERROR")
    assert err["details"][0]["path"] == "conditions.0.field"
    fixed = {"isActive": True, "conditions": [VALID[6]]}
    assert data(await tenant.patch(path, json=fixed))["isActive"] is True


async def test_removing_an_option_switches_off_the_rules_naming_it(tenant: Tenant) -> None:
    fields = await define_all(tenant)
    gold = data(
        await tenant.post(
            "/v1/automations", json=rule_body(cond("ticket.custom.plan", "is", "gold"))
        ),
        201,
    )
    silver = data(
        await tenant.post(
            "/v1/automations", json=rule_body(cond("ticket.custom.plan", "in", ["silver"]))
        ),
        201,
    )
    data(
        await tenant.patch(
            f"/v1/custom-fields/{fields['plan']}", json={"options": ["silver", "bronze"]}
        )
    )
    active = {r["id"]: r["isActive"] for r in data(await tenant.get("/v1/automations"))}
    assert active == {gold["id"]: False, silver["id"]: True}


async def age(app_runtime: Runtime, model: Any, row_id: str, hours: float) -> None:
    async with app_runtime.db.transaction() as session:
        await session.execute(
            update(model)
            .where(model.id == row_id)
            .values(updated_at=now() - int(hours * 3600))
            .execution_options(synchronize_session=False)
        )


async def test_time_rules_test_custom_fields(tenant: Tenant, app_runtime: Runtime) -> None:
    await define_all(tenant)
    customer = data(await tenant.post("/v1/users", json={"email": "lee@shop.test"}), 201)
    data(
        await tenant.post(
            "/v1/automations",
            json=rule_body(
                cond("ticket.custom.seats", "gte", 10),  # decided in SQL
                cond("customer.custom.tier", "in", ["paid"]),  # decided by the engine
                trigger="time.elapsed",
                triggerConfig={"hours": 2, "field": "updated"},
            ),
        ),
        201,
    )
    big = await new_ticket(tenant, userId=customer["id"], customFields={"seats": 50})
    small = await new_ticket(tenant, userId=customer["id"], customFields={"seats": 2})
    for ticket in (big, small):
        await age(app_runtime, Ticket, ticket["id"], 3)
    await age(app_runtime, User, customer["id"], 3)

    earlier = now() - 10
    report = await run_time_rules(app_runtime, at=earlier)
    assert report.candidates == 1 and report.fired == 0 and report.unmatched == 1
    assert (await run_time_rules(app_runtime, at=earlier)).candidates == 0  # remembered

    # the customer's change is a change the memory sees
    data(
        await tenant.patch(
            f"/v1/users/{customer['id']}/custom-fields", json={"customFields": {"tier": "paid"}}
        )
    )
    report = await run_time_rules(app_runtime)
    assert report.fired == 1
    assert data(await tenant.get(f"/v1/tickets/{big['id']}"))["tags"] == ["matched"]
    assert data(await tenant.get(f"/v1/tickets/{small['id']}"))["tags"] == []


@pytest.fixture
def _no_fields_service(app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delitem(app_runtime.services, "custom_field_definitions")
    yield


@pytest.mark.usefixtures("_no_fields_service")
async def test_without_custom_fields_no_rule_names_one(tenant: Tenant) -> None:
    err = error(
        await tenant.post("/v1/automations", json=rule_body(VALID[1])), 422, "VALIDATION_ERROR"
    )
    assert err["details"][0]["path"] == "conditions.0.field"


async def test_a_ticket_value_change_is_seen_by_time_rules(
    tenant: Tenant, app_runtime: Runtime
) -> None:
    await define_all(tenant)
    data(
        await tenant.post(
            "/v1/automations",
            json=rule_body(
                cond("ticket.custom.summary", "contains", "refund"),  # decided by the engine
                trigger="time.elapsed",
                triggerConfig={"hours": 2, "field": "created"},
            ),
        ),
        201,
    )
    ticket = await new_ticket(tenant, customFields={"summary": "wants a discount"})
    async with app_runtime.db.transaction() as session:
        await session.execute(
            update(Ticket)
            .where(Ticket.id == ticket["id"])
            .values(created_at=now() - 3 * 3600, updated_at=now() - 3 * 3600)
            .execution_options(synchronize_session=False)
        )
    earlier = now() - 10
    assert (await run_time_rules(app_runtime, at=earlier)).unmatched == 1
    assert (await run_time_rules(app_runtime, at=earlier)).candidates == 0  # remembered

    path = f"/v1/tickets/{ticket['id']}"
    await tenant.patch(f"{path}/custom-fields", json={"customFields": {"summary": "A REFUND"}})
    assert data(await tenant.get(path))["updatedAt"] > earlier  # a change of the ticket
    assert (await run_time_rules(app_runtime)).fired == 1
    assert data(await tenant.get(path))["tags"] == ["matched"]
