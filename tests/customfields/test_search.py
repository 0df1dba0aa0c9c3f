"""Inbox search (`q`) finds tickets by the text, dropdown and multi-select values of their own
and their customer's custom fields, and follows every change of those values."""

from __future__ import annotations

from typing import Any

from tests.support.api import Tenant, data
from tests.support.helpdesk import new_ticket


async def found(tenant: Tenant, q: str) -> list[str]:
    return [t["id"] for t in data(await tenant.get("/v1/tickets", params={"q": q}))]


async def define(tenant: Tenant, entity: str, key: str, type: str, **extra: Any) -> str:
    body = {"entity": entity, "key": key, "label": key.title(), "type": type, **extra}
    return str(data(await tenant.post("/v1/custom-fields", json=body), 201)["id"])


async def put(tenant: Tenant, path: str, values: dict[str, Any]) -> None:
    data(await tenant.patch(f"{path}/custom-fields", json={"customFields": values}))


async def test_ticket_values_are_searched(tenant: Tenant) -> None:
    await define(tenant, "ticket", "serial", "text")
    await define(tenant, "ticket", "model", "dropdown", options=["Zephyr X2", "Boreas"])
    await define(tenant, "ticket", "parts", "multiselect", options=["hinge", "battery"])
    await define(tenant, "ticket", "seats", "number")
    await define(tenant, "ticket", "renewal", "date")
    laptop = await new_ticket(
        tenant,
        subject="Screen flickers",
        customFields={"serial": "SN-48213-QX", "model": "Zephyr X2", "seats": 7791},
    )
    other = await new_ticket(tenant, subject="Screen cracked")
    assert await found(tenant, "48213") == [laptop["id"]]
    assert await found(tenant, "zephyr screen") == [laptop["id"]]
    assert await found(tenant, "7791") == []  # numbers are filters, not words

    path = f"/v1/tickets/{laptop['id']}"
    await put(tenant, path, {"model": "Boreas", "parts": ["battery"]})
    assert await found(tenant, "zephyr") == []
    assert await found(tenant, "boreas battery") == [laptop["id"]]
    data(await tenant.patch(path, json={"customFields": {"serial": None}}))  # via the ticket
    assert await found(tenant, "48213") == []
    await put(tenant, f"/v1/tickets/{other['id']}", {"renewal": "2027-05-01"})
    assert await found(tenant, "2027") == []


async def test_customer_values_are_searched(tenant: Tenant) -> None:
    await define(tenant, "user", "account", "text")
    await define(tenant, "company", "region", "text")
    ticket = await new_ticket(tenant, customer={"email": "ann@shop.test", "name": "Ann"})
    customer = f"/v1/users/{ticket['customer']['id']}"
    await put(tenant, customer, {"account": "ACCT-7731"})
    assert await found(tenant, "acct 7731") == [ticket["id"]]
    later = await new_ticket(tenant, userId=ticket["customer"]["id"])
    assert set(await found(tenant, "7731")) == {ticket["id"], later["id"]}
    await put(tenant, customer, {"account": None})
    assert await found(tenant, "7731") == []


async def test_deleting_a_field_takes_its_words_out(tenant: Tenant) -> None:
    field = await define(tenant, "ticket", "serial", "text")
    customer_field = await define(tenant, "user", "account", "text")
    ticket = await new_ticket(tenant, customFields={"serial": "SN-55120"})
    await put(tenant, f"/v1/users/{ticket['customer']['id']}", {"account": "ACCT-9902"})
    assert await found(tenant, "55120") == [ticket["id"]]
    assert await found(tenant, "9902") == [ticket["id"]]
    for doomed in (field, customer_field):
        assert (await tenant.delete(f"/v1/custom-fields/{doomed}")).status_code == 204
    assert await found(tenant, "55120") == []
    assert await found(tenant, "9902") == []


async def test_values_are_searched_in_their_workspace_only(
    tenant: Tenant, make_tenant: Any
) -> None:
    other = await make_tenant()
    for workspace in (tenant, other):
        await define(workspace, "ticket", "serial", "text")
    theirs = await new_ticket(other, customFields={"serial": "SN-31337"})
    mine = await new_ticket(tenant, customFields={"serial": "SN-31338"})
    assert await found(tenant, "31337") == []
    assert await found(tenant, "31338") == [mine["id"]]
    assert await found(other, "31337") == [theirs["id"]]
