from enque.core.runtime import Runtime
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import add_agent, new_ticket


async def test_category_lifecycle(tenant: Tenant):
    billing = data(
        await tenant.post("/v1/categories", json={"name": "Billing", "color": "#ff0000"}), 201
    )
    assert set(billing) == {"id", "name", "color", "createdAt", "updatedAt"}
    data(await tenant.post("/v1/categories", json={"name": "Access"}), 201)
    assert [c["name"] for c in data(await tenant.get("/v1/categories"))] == ["Access", "Billing"]

    renamed = data(await tenant.patch(f"/v1/categories/{billing['id']}", json={"name": "Invoices"}))
    assert renamed["name"] == "Invoices" and renamed["color"] == "#ff0000"
    error(
        await tenant.patch(f"/v1/categories/{billing['id']}", json={"color": "red"}),
        422,
        "VALIDATION_ERROR",
    )


async def test_name_unique_per_workspace(tenant: Tenant, make_tenant):
    data(await tenant.post("/v1/categories", json={"name": "Bugs"}), 201)
    error(await tenant.post("/v1/categories", json={"name": "bugs"}), 409, "CONFLICT")
    other = data(await tenant.post("/v1/categories", json={"name": "Ideas"}), 201)
    error(
        await tenant.patch(f"/v1/categories/{other['id']}", json={"name": "BUGS"}), 409, "CONFLICT"
    )
    elsewhere = await make_tenant()
    data(await elsewhere.post("/v1/categories", json={"name": "Bugs"}), 201)


async def test_delete_keeps_it_on_tickets(tenant: Tenant, app_runtime: Runtime):
    category = data(await tenant.post("/v1/categories", json={"name": "Hardware"}), 201)
    ticket = await new_ticket(tenant, categoryId=category["id"])
    agent = await add_agent(app_runtime, tenant, "agent")
    error(
        await tenant.delete(f"/v1/categories/{category['id']}", token=agent.token), 403, "FORBIDDEN"
    )
    assert (await tenant.delete(f"/v1/categories/{category['id']}")).status_code == 204
    assert data(await tenant.get("/v1/categories")) == []
    kept = data(await tenant.get(f"/v1/tickets/{ticket['id']}"))
    assert kept["category"]["name"] == "Hardware"
    error(
        await tenant.post(
            "/v1/tickets",
            json={
                "subject": "s",
                "categoryId": category["id"],
                "customer": {"email": "c@example.com"},
            },
        ),
        422,
        "VALIDATION_ERROR",
    )
    data(await tenant.post("/v1/categories", json={"name": "Hardware"}), 201)
    error(
        await tenant.patch(f"/v1/categories/{category['id']}", json={"name": "x"}), 404, "NOT_FOUND"
    )
