"""Custom fields: definitions, typed values on tickets/customers/companies, required on
close, and the inbox filter."""

from __future__ import annotations

from typing import Any

import pytest

from enque.customfields import service
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import new_ticket


async def define(tenant: Tenant, **body: Any) -> dict[str, Any]:
    body.setdefault("entity", "ticket")
    body.setdefault("label", body["key"].title())
    return data(await tenant.post("/v1/custom-fields", json=body), 201)  # type: ignore[no-any-return]


async def set_values(tenant: Tenant, path: str, values: dict[str, Any]) -> Any:
    return await tenant.patch(f"{path}/custom-fields", json={"customFields": values})


async def test_definitions(tenant: Tenant, make_tenant: Any) -> None:
    plan = await define(tenant, key="plan", type="dropdown", options=["gold", "silver", "gold"])
    assert plan["options"] == ["gold", "silver"] and plan["requiredOnClose"] is False
    await define(tenant, key="plan", type="text", entity="company")  # same key, other entity
    failure = error(
        await tenant.post(
            "/v1/custom-fields",
            json={"entity": "ticket", "key": "plan", "label": "P", "type": "text"},
        ),
        409,
        "CONFLICT",
    )
    assert failure["details"] == [{"path": "key", "message": "taken"}]
    for bad in (
        {"key": "Bad Key", "type": "text"},
        {"key": "colour", "type": "dropdown"},  # options needed
        {"key": "colour", "type": "text", "options": ["a"]},
        {"key": "colour", "type": "dropdown", "options": ["a|b"]},
        {"key": "colour", "type": "colour"},
    ):
        body = {"entity": "ticket", "label": "L", **bad}
        error(await tenant.post("/v1/custom-fields", json=body), 422, "VALIDATION_ERROR")
    patched = data(
        await tenant.patch(
            f"/v1/custom-fields/{plan['id']}", json={"label": "Plan", "options": ["gold", "bronze"]}
        )
    )
    assert patched["label"] == "Plan" and patched["options"] == ["gold", "bronze"]
    listed = data(await tenant.get("/v1/custom-fields", params={"entity": "ticket"}))
    assert [f["id"] for f in listed] == [plan["id"]]
    other = await make_tenant()
    assert data(await other.get("/v1/custom-fields")) == []
    assert (await tenant.delete(f"/v1/custom-fields/{plan['id']}")).status_code == 204
    assert data(await tenant.get("/v1/custom-fields", params={"entity": "ticket"})) == []


async def test_values_are_validated_per_type(tenant: Tenant, events: list[Any]) -> None:
    await define(tenant, key="summary", type="text")
    await define(tenant, key="seats", type="number")
    await define(tenant, key="renewal", type="date")
    await define(tenant, key="plan", type="dropdown", options=["gold", "silver"])
    await define(tenant, key="addons", type="multiselect", options=["sso", "api", "audit"])
    await define(tenant, key="vip", type="checkbox")
    ticket = await new_ticket(tenant)
    path = f"/v1/tickets/{ticket['id']}"
    good = {
        "summary": "hi",
        "seats": 12.5,
        "renewal": "2027-01-31",
        "plan": "gold",
        "addons": ["audit", "sso", "audit"],
        "vip": False,
    }
    saved = data(await set_values(tenant, path, good))["customFields"]
    assert saved == {**good, "addons": ["sso", "audit"]}
    assert data(await tenant.get(f"{path}/custom-fields"))["customFields"] == saved
    failure = error(
        await set_values(
            tenant,
            path,
            {
                "summary": 5,
                "seats": True,
                "renewal": "31.1.2027",
                "plan": "bronze",
                "addons": ["x"],
                "vip": "yes",
                "nope": 1,
            },
        ),
        422,
        "VALIDATION_ERROR",
    )
    assert sorted(d["path"] for d in failure["details"]) == sorted(
        f"customFields.{k}"
        for k in ("summary", "seats", "renewal", "plan", "addons", "vip", "nope")
    )
    assert data(await tenant.get(f"{path}/custom-fields"))["customFields"] == saved  # unchanged
    cleared = data(await set_values(tenant, path, {"summary": None, "seats": 3}))["customFields"]
    assert "summary" not in cleared and cleared["seats"] == 3
    # a ticket's values change as the ticket does: one `ticket.updated` listing them
    assert not [e for e in events if e.type == "custom_fields.updated"]
    last = [e.payload for e in events if e.type == "ticket.updated"][-1]
    assert last["changes"] == {
        "customFields.summary": ["hi", None],
        "customFields.seats": [12.5, 3],
    }
    assert last["ticket"]["customFields"] == cleared


async def test_customers_and_companies_have_their_own_fields(
    tenant: Tenant, make_tenant: Any
) -> None:
    await define(tenant, key="tier", type="dropdown", options=["a", "b"], entity="user")
    await define(tenant, key="size", type="number", entity="company")
    user = data(await tenant.post("/v1/users", json={"email": "cf@example.com", "name": "C"}), 201)
    company = data(await tenant.post("/v1/companies", json={"name": "Acme"}), 201)
    assert data(await set_values(tenant, f"/v1/users/{user['id']}", {"tier": "b"})) == {
        "id": user["id"],
        "customFields": {"tier": "b"},
    }
    error(await set_values(tenant, f"/v1/users/{user['id']}", {"size": 3}), 422, "VALIDATION_ERROR")
    assert data(await set_values(tenant, f"/v1/companies/{company['id']}", {"size": 40}))[
        "customFields"
    ] == {"size": 40}
    other = await make_tenant()
    error(await set_values(other, f"/v1/users/{user['id']}", {}), 404, "NOT_FOUND")
    error(await other.get(f"/v1/companies/{company['id']}/custom-fields"), 404, "NOT_FOUND")


async def test_required_on_close(tenant: Tenant) -> None:
    await define(
        tenant, key="cause", type="dropdown", options=["bug", "howto"], requiredOnClose=True
    )
    await define(tenant, key="optional", type="text")
    ticket = await new_ticket(tenant)
    failure = error(
        await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"status": "Closed"}),
        422,
        "VALIDATION_ERROR",
    )
    assert failure["details"] == [
        {"path": "customFields.cause", "message": "required to close the ticket"}
    ]
    assert data(await tenant.get(f"/v1/tickets/{ticket['id']}"))["status"] != "Closed"
    await set_values(tenant, f"/v1/tickets/{ticket['id']}", {"cause": "bug"})
    closed = await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"status": "Closed"})
    assert closed.status_code == 200 and data(closed)["status"] == "Closed"


@pytest.mark.parametrize("common", [False, True], ids=["rare-values", "common-values"])
async def test_the_inbox_filters_by_custom_fields(
    tenant: Tenant, common: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if common:  # every value counts as common: SQLite probes per listed ticket
        monkeypatch.setattr(service, "COMMON_VALUE", 1)
    await define(tenant, key="plan", type="dropdown", options=["gold", "silver"])
    await define(tenant, key="seats", type="number")
    await define(tenant, key="addons", type="multiselect", options=["sso", "api"])
    gold = await new_ticket(tenant, subject="gold one")
    silver = await new_ticket(tenant, subject="silver one")
    await new_ticket(tenant, subject="no plan")
    await set_values(
        tenant, f"/v1/tickets/{gold['id']}", {"plan": "gold", "seats": 10, "addons": ["sso", "api"]}
    )
    await set_values(
        tenant, f"/v1/tickets/{silver['id']}", {"plan": "silver", "seats": 10, "addons": ["api"]}
    )

    async def ids(*pairs: str) -> list[str]:
        return [t["id"] for t in data(await tenant.get("/v1/tickets", params={"cf": list(pairs)}))]

    assert await ids("plan:gold") == [gold["id"]]
    assert sorted(await ids("seats:10")) == sorted([gold["id"], silver["id"]])
    assert await ids("seats:10", "plan:silver") == [silver["id"]]
    assert await ids("addons:sso") == [gold["id"]]
    assert sorted(await ids("addons:api")) == sorted([gold["id"], silver["id"]])
    error(await tenant.get("/v1/tickets", params={"cf": "nope:1"}), 422, "VALIDATION_ERROR")
    error(await tenant.get("/v1/tickets", params={"cf": "plan"}), 422, "VALIDATION_ERROR")


async def test_ticket_bodies_carry_their_custom_fields(tenant: Tenant, events: list[Any]) -> None:
    await define(tenant, key="plan", type="dropdown", options=["gold", "silver"])
    await define(tenant, key="seats", type="number")
    await define(tenant, key="vip", type="checkbox")
    made = data(
        await tenant.post(
            "/v1/tickets",
            json={
                "subject": "Upgrade",
                "customer": {"email": "cf-body@example.com"},
                "customFields": {"plan": "gold", "seats": 3},
            },
        ),
        201,
    )
    assert made["customFields"] == {"plan": "gold", "seats": 3}
    path = f"/v1/tickets/{made['id']}"
    assert data(await tenant.get(path))["customFields"] == {"plan": "gold", "seats": 3}
    listed = data(await tenant.get("/v1/tickets"))
    assert [t["customFields"] for t in listed] == [{"plan": "gold", "seats": 3}]
    created = [e for e in events if e.type == "ticket.created"]
    assert created[-1].payload["customFields"] == {"plan": "gold", "seats": 3}
    # PATCH merges, null clears; other fields change in the same request
    patched = data(
        await tenant.patch(
            path,
            json={"subject": "Upgrade now", "customFields": {"seats": None, "vip": True}},
        )
    )
    assert patched["subject"] == "Upgrade now"
    assert patched["customFields"] == {"plan": "gold", "vip": True}
    updated = [e for e in events if e.type == "ticket.updated"]
    assert updated[-1].payload["ticket"]["customFields"] == {"plan": "gold", "vip": True}
    assert updated[-1].payload["changes"] == {
        "subject": ["Upgrade", "Upgrade now"],
        "customFields.seats": [3, None],
        "customFields.vip": [None, True],
    }
    # only values: a change of the ticket all the same (a new version, one event)
    version = patched["version"]
    same = data(await tenant.patch(path, json={"customFields": {"plan": "silver"}}))
    assert same["customFields"]["plan"] == "silver" and same["version"] == version + 1
    updated = [e for e in events if e.type == "ticket.updated"]
    assert updated[-1].payload["changes"] == {"customFields.plan": ["gold", "silver"]}
    # values as they are: no change, no version, no event
    again = data(await tenant.patch(path, json={"customFields": {"plan": "silver"}}))
    assert again["version"] == same["version"]
    assert len([e for e in events if e.type == "ticket.updated"]) == len(updated)
    # the sub-resource is the same data
    assert data(await tenant.get(f"{path}/custom-fields"))["customFields"] == same["customFields"]
    activity = data(await tenant.get(f"{path}/activities"))
    changes = [a for a in activity if a["verb"] == "custom_fields.updated"]
    assert [c["after"] for c in changes] == [
        {"plan": "gold", "seats": 3},
        {"seats": None, "vip": True},
        {"plan": "silver"},
    ]
    assert all(c["actor"]["id"] == tenant.agent_id for c in changes)


async def test_bad_ticket_values_write_nothing(tenant: Tenant) -> None:
    await define(tenant, key="plan", type="dropdown", options=["gold", "silver"])
    await define(tenant, key="seats", type="number")
    failure = error(
        await tenant.post(
            "/v1/tickets",
            json={
                "subject": "Nope",
                "customer": {"email": "nobody-new@example.com"},
                "tags": ["x"],
                "customFields": {"plan": "bronze", "seats": "many", "colour": "red"},
            },
        ),
        422,
        "VALIDATION_ERROR",
    )
    assert sorted(d["path"] for d in failure["details"]) == [
        "customFields.colour",
        "customFields.plan",
        "customFields.seats",
    ]
    assert data(await tenant.get("/v1/tickets")) == []
    assert data(await tenant.get("/v1/users", params={"q": "nobody-new"})) == []
    ticket = await new_ticket(tenant, customFields={"plan": "gold"})
    path = f"/v1/tickets/{ticket['id']}"
    error(
        await tenant.patch(
            path, json={"subject": "Changed", "priority": "High", "customFields": {"seats": True}}
        ),
        422,
        "VALIDATION_ERROR",
    )
    after = data(await tenant.get(path))
    assert (after["subject"], after["priority"], after["version"]) == (
        ticket["subject"],
        ticket["priority"],
        ticket["version"],
    )
    assert after["customFields"] == {"plan": "gold"}
    # a customer's field is not a ticket's
    await define(tenant, key="tier", type="text", entity="user")
    error(await tenant.patch(path, json={"customFields": {"tier": "a"}}), 422, "VALIDATION_ERROR")
    shape = error(
        await tenant.patch(path, json={"customFields": ["plan"]}), 422, "VALIDATION_ERROR"
    )
    assert shape["details"][0]["path"] == "customFields"


async def test_required_on_close_with_the_values_in_the_same_request(tenant: Tenant) -> None:
    await define(
        tenant, key="cause", type="dropdown", options=["bug", "howto"], requiredOnClose=True
    )
    ticket = await new_ticket(tenant)
    path = f"/v1/tickets/{ticket['id']}"
    failure = error(
        await tenant.patch(path, json={"status": "Closed", "customFields": {"cause": None}}),
        422,
        "VALIDATION_ERROR",
    )
    assert failure["details"] == [
        {"path": "customFields.cause", "message": "required to close the ticket"}
    ]
    closed = data(
        await tenant.patch(path, json={"status": "Closed", "customFields": {"cause": "howto"}})
    )
    assert closed["status"] == "Closed" and closed["customFields"] == {"cause": "howto"}
    # a ticket created closed passes the same check
    body = {"subject": "Done already", "customer": {"email": "closed@example.com"}}
    error(
        await tenant.post("/v1/tickets", json={**body, "status": "Closed"}),
        422,
        "VALIDATION_ERROR",
    )
    made = data(
        await tenant.post(
            "/v1/tickets", json={**body, "status": "Closed", "customFields": {"cause": "bug"}}
        ),
        201,
    )
    assert made["status"] == "Closed" and made["customFields"] == {"cause": "bug"}


async def test_customer_and_company_bodies_carry_their_custom_fields(
    tenant: Tenant, make_tenant: Any
) -> None:
    await define(tenant, key="tier", type="dropdown", options=["a", "b"], entity="user")
    await define(tenant, key="size", type="number", entity="company")
    user = data(
        await tenant.post(
            "/v1/users", json={"email": "body@example.com", "customFields": {"tier": "a"}}
        ),
        201,
    )
    assert user["customFields"] == {"tier": "a"}
    path = f"/v1/users/{user['id']}"
    assert data(await tenant.get(path))["customFields"] == {"tier": "a"}
    assert [u["customFields"] for u in data(await tenant.get("/v1/users"))] == [{"tier": "a"}]
    patched = data(await tenant.patch(path, json={"name": "Bo", "customFields": {"tier": "b"}}))
    assert patched["name"] == "Bo" and patched["customFields"] == {"tier": "b"}
    error(
        await tenant.patch(path, json={"name": "Nope", "customFields": {"tier": "c"}}),
        422,
        "VALIDATION_ERROR",
    )
    assert data(await tenant.get(path))["name"] == "Bo"
    error(
        await tenant.post(
            "/v1/users", json={"email": "never@example.com", "customFields": {"size": 3}}
        ),
        422,
        "VALIDATION_ERROR",
    )
    assert data(await tenant.get("/v1/users", params={"q": "never@"})) == []

    company = data(
        await tenant.post("/v1/companies", json={"name": "Acme", "customFields": {"size": 40}}),
        201,
    )
    assert company["customFields"] == {"size": 40}
    cpath = f"/v1/companies/{company['id']}"
    assert data(await tenant.get(cpath))["customFields"] == {"size": 40}
    listed = data(await tenant.get("/v1/companies"))
    assert [c["customFields"] for c in listed] == [{"size": 40}]
    assert (
        data(await tenant.patch(cpath, json={"customFields": {"size": None}}))["customFields"] == {}
    )
    failure = error(
        await tenant.post(
            "/v1/companies",
            json={"name": "Bad", "emailDomains": ["bad.test"], "customFields": {"size": "x"}},
        ),
        422,
        "VALIDATION_ERROR",
    )
    assert failure["details"] == [{"path": "customFields.size", "message": "must be a number"}]
    assert [c["name"] for c in data(await tenant.get("/v1/companies"))] == ["Acme"]
    # the definitions are the workspace's own
    other = await make_tenant()
    error(
        await other.post(
            "/v1/users", json={"email": "x@example.com", "customFields": {"tier": "a"}}
        ),
        422,
        "VALIDATION_ERROR",
    )
