from enque.core.runtime import Runtime
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import add_agent, new_ticket

COMPANY_KEYS = {
    "id",
    "name",
    "description",
    "emailDomains",
    "logoUrl",
    "primaryContactId",
    "accountManagerId",
    "customFields",
    "createdAt",
    "updatedAt",
}


async def test_company_domains_link_new_customers(tenant: Tenant):
    company = data(
        await tenant.post(
            "/v1/companies",
            json={"name": "Initech", "emailDomains": ["@Initech.TEST", "initech.io"]},
        ),
        201,
    )
    assert set(company) == COMPANY_KEYS
    assert company["emailDomains"] == ["initech.test", "initech.io"]
    assert company["description"] is None

    peter = data(await tenant.post("/v1/users", json={"email": "peter@INITECH.test"}), 201)
    assert peter["companyId"] == company["id"]
    assert peter["company"] == {"id": company["id"], "name": "Initech"}
    outsider = data(await tenant.post("/v1/users", json={"email": "bob@elsewhere.test"}), 201)
    assert outsider["companyId"] is None

    ticket = await new_ticket(tenant, customer={"email": "milton@initech.io"})
    assert ticket["companyId"] == company["id"]
    assert ticket["company"] == {"id": company["id"], "name": "Initech"}
    listed = data(await tenant.get(f"/v1/companies/{company['id']}/tickets"))
    assert [t["id"] for t in listed] == [ticket["id"]]
    assert [
        u["email"] for u in data(await tenant.get("/v1/users", params={"companyId": company["id"]}))
    ] == ["milton@initech.io", "peter@initech.test"]


async def test_domain_belongs_to_one_company(tenant: Tenant):
    data(await tenant.post("/v1/companies", json={"name": "A", "emailDomains": ["a.test"]}), 201)
    error(
        await tenant.post("/v1/companies", json={"name": "B", "emailDomains": ["A.test"]}),
        409,
        "CONFLICT",
    )
    b = data(await tenant.post("/v1/companies", json={"name": "B"}), 201)
    error(
        await tenant.patch(f"/v1/companies/{b['id']}", json={"emailDomains": ["a.test"]}),
        409,
        "CONFLICT",
    )
    error(
        await tenant.post("/v1/companies", json={"name": "C", "emailDomains": ["not a domain"]}),
        422,
        "VALIDATION_ERROR",
    )


async def test_update_domains_and_delete(tenant: Tenant):
    company = data(
        await tenant.post("/v1/companies", json={"name": "Acme", "emailDomains": ["acme.test"]}),
        201,
    )
    updated = data(
        await tenant.patch(
            f"/v1/companies/{company['id']}",
            json={"emailDomains": ["acme.io"], "description": "Roadrunner gear"},
        )
    )
    assert updated["emailDomains"] == ["acme.io"]
    assert updated["description"] == "Roadrunner gear"
    assert (
        data(await tenant.post("/v1/users", json={"email": "w@acme.test"}), 201)["companyId"]
        is None
    )
    wile = data(await tenant.post("/v1/users", json={"email": "wile@acme.io"}), 201)
    assert wile["companyId"] == company["id"]

    assert (await tenant.delete(f"/v1/companies/{company['id']}")).status_code == 204
    error(await tenant.get(f"/v1/companies/{company['id']}"), 404, "NOT_FOUND")
    assert data(await tenant.get(f"/v1/users/{wile['id']}"))["companyId"] is None
    # its domain is free for another company
    data(
        await tenant.post("/v1/companies", json={"name": "Acme 2", "emailDomains": ["acme.io"]}),
        201,
    )


async def test_company_writes_need_a_manager(tenant: Tenant, app_runtime: Runtime):
    agent = await add_agent(app_runtime, tenant, "agent")
    manager = await add_agent(app_runtime, tenant, "manager")
    error(
        await tenant.post("/v1/companies", json={"name": "X"}, token=agent.token), 403, "FORBIDDEN"
    )
    made = data(await tenant.post("/v1/companies", json={"name": "X"}, token=manager.token), 201)
    assert data(await tenant.get("/v1/companies", token=agent.token))[0]["id"] == made["id"]
    error(await tenant.delete(f"/v1/companies/{made['id']}", token=agent.token), 403, "FORBIDDEN")


async def test_company_references_stay_in_workspace(tenant: Tenant, make_tenant, app_runtime):
    other = await make_tenant()
    foreign_user = data(await other.post("/v1/users", json={"email": "f@example.com"}), 201)
    error(
        await tenant.post(
            "/v1/companies", json={"name": "Y", "primaryContactId": foreign_user["id"]}
        ),
        422,
        "VALIDATION_ERROR",
    )
    error(
        await tenant.post("/v1/companies", json={"name": "Y", "accountManagerId": other.agent_id}),
        422,
        "VALIDATION_ERROR",
    )
    manager = await add_agent(app_runtime, tenant, "manager")
    made = data(
        await tenant.post(
            "/v1/companies", json={"name": "Y", "accountManagerId": manager.agent_id}
        ),
        201,
    )
    assert made["accountManagerId"] == manager.agent_id


async def test_company_list_search(tenant: Tenant):
    for name in ("Globex", "Hooli", "Globo Gym"):
        data(await tenant.post("/v1/companies", json={"name": name}), 201)
    names = [c["name"] for c in data(await tenant.get("/v1/companies", params={"q": "glob"}))]
    assert names == ["Globex", "Globo Gym"]
