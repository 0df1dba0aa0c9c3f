import asyncio

from enque.activity.service import SYSTEM
from enque.core.runtime import Runtime
from enque.customers.service import find_or_create_customer
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import add_agent, new_ticket

CUSTOMER_KEYS = {
    "id",
    "name",
    "email",
    "phone",
    "avatarUrl",
    "companyId",
    "company",
    "notes",
    "isBlocked",
    "customFields",
    "createdAt",
    "updatedAt",
}


async def test_create_read_update_customer(tenant: Tenant):
    created = data(
        await tenant.post("/v1/users", json={"email": "Ann.Lee@Example.COM", "name": "Ann Lee"}),
        201,
    )
    assert set(created) == CUSTOMER_KEYS
    assert created["email"] == "Ann.Lee@example.com"
    assert created["phone"] is None and created["company"] is None
    assert isinstance(created["createdAt"], int)

    fetched = data(await tenant.get(f"/v1/users/{created['id']}"))
    assert fetched == created

    changed = data(
        await tenant.patch(f"/v1/users/{created['id']}", json={"phone": "+1 555", "notes": "VIP"})
    )
    assert changed["phone"] == "+1 555" and changed["notes"] == "VIP"
    error(
        await tenant.patch(f"/v1/users/{created['id']}", json={"name": None}),
        422,
        "VALIDATION_ERROR",
    )


async def test_name_defaults_to_local_part(tenant: Tenant):
    created = data(await tenant.post("/v1/users", json={"email": "bob@example.com"}), 201)
    assert created["name"] == "bob"


async def test_email_unique_per_workspace_case_insensitive(tenant: Tenant, make_tenant):
    data(await tenant.post("/v1/users", json={"email": "dup@example.com"}), 201)
    err = error(await tenant.post("/v1/users", json={"email": "DUP@example.com"}), 409, "CONFLICT")
    assert err["details"][0]["path"] == "email"
    other = await make_tenant()
    data(await other.post("/v1/users", json={"email": "dup@example.com"}), 201)

    second = data(await tenant.post("/v1/users", json={"email": "second@example.com"}), 201)
    error(
        await tenant.patch(f"/v1/users/{second['id']}", json={"email": "Dup@Example.com"}),
        409,
        "CONFLICT",
    )


async def test_list_search_and_paging(tenant: Tenant):
    for name in ("Zed Zulu", "Amy Alpha", "Mia Mike"):
        email = f"{name.split()[0].lower()}@shop.test"
        data(await tenant.post("/v1/users", json={"email": email, "name": name}), 201)
    page = await tenant.get("/v1/users", params={"limit": 2, "includeTotal": "true"})
    body = page.json()
    assert [u["name"] for u in body["data"]] == ["Amy Alpha", "Mia Mike"]
    assert body["meta"]["total"] == 3 and body["meta"]["nextCursor"]
    rest = data(await tenant.get("/v1/users", params={"cursor": body["meta"]["nextCursor"]}))
    assert [u["name"] for u in rest] == ["Zed Zulu"]

    assert [u["name"] for u in data(await tenant.get("/v1/users", params={"q": "mike"}))] == [
        "Mia Mike"
    ]
    assert [u["name"] for u in data(await tenant.get("/v1/users", params={"q": "zed@"}))] == [
        "Zed Zulu"
    ]
    assert data(await tenant.get("/v1/users", params={"q": "%"})) == []


async def test_delete_is_soft_and_manager_only(tenant: Tenant, app_runtime: Runtime):
    user = data(await tenant.post("/v1/users", json={"email": "gone@example.com"}), 201)
    ticket = await new_ticket(tenant, userId=user["id"])
    agent = await add_agent(app_runtime, tenant, "agent")
    error(await tenant.delete(f"/v1/users/{user['id']}", token=agent.token), 403, "FORBIDDEN")

    response = await tenant.delete(f"/v1/users/{user['id']}")
    assert response.status_code == 204 and response.content == b""
    error(await tenant.get(f"/v1/users/{user['id']}"), 404, "NOT_FOUND")
    assert data(await tenant.get("/v1/users")) == []
    kept = data(await tenant.get(f"/v1/tickets/{ticket['id']}"))
    assert kept["customer"]["email"] == "gone@example.com"
    # the address is free again for a new customer
    data(await tenant.post("/v1/users", json={"email": "gone@example.com"}), 201)


async def test_unknown_and_foreign_ids_are_404(tenant: Tenant, make_tenant):
    other = await make_tenant()
    foreign = data(await other.post("/v1/users", json={"email": "x@example.com"}), 201)
    for path in (f"/v1/users/{foreign['id']}", "/v1/users/nope", "/v1/users/" + "9" * 300):
        error(await tenant.get(path), 404, "NOT_FOUND")
    error(await tenant.patch(f"/v1/users/{foreign['id']}", json={"name": "n"}), 404, "NOT_FOUND")
    foreign_company = data(await other.post("/v1/companies", json={"name": "Other"}), 201)
    err = error(
        await tenant.post(
            "/v1/users", json={"email": "y@example.com", "companyId": foreign_company["id"]}
        ),
        422,
        "VALIDATION_ERROR",
    )
    assert err["details"][0]["path"] == "companyId"


async def test_customer_tickets(tenant: Tenant, make_tenant):
    user = data(await tenant.post("/v1/users", json={"email": "own@example.com"}), 201)
    mine = await new_ticket(tenant, userId=user["id"])
    await new_ticket(tenant)
    listed = data(await tenant.get(f"/v1/users/{user['id']}/tickets"))
    assert [t["id"] for t in listed] == [mine["id"]]
    other = await make_tenant()
    error(await other.get(f"/v1/users/{user['id']}/tickets"), 404, "NOT_FOUND")


async def test_find_or_create_customer(tenant: Tenant, app_runtime: Runtime):
    async with app_runtime.db.transaction() as session:
        first = await find_or_create_customer(
            session, tenant.workspace_id, "New.Person@Example.com", "New Person"
        )
    async with app_runtime.db.transaction() as session:
        again = await find_or_create_customer(
            session, tenant.workspace_id, "new.person@example.COM"
        )
    assert again.id == first.id and again.name == "New Person"


async def test_find_or_create_customer_concurrently(tenant: Tenant, app_runtime: Runtime):
    async def one() -> str:
        async with app_runtime.db.transaction() as session:
            user = await find_or_create_customer(
                session, tenant.workspace_id, "race@example.com", "Racer", actor=SYSTEM
            )
            return user.id

    ids = await asyncio.gather(*(one() for _ in range(6)))
    assert len(set(ids)) == 1
    assert len(data(await tenant.get("/v1/users", params={"q": "race@"}))) == 1
