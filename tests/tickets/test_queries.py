"""The inbox, a ticket and its thread cost a constant number of queries, whatever they hold."""

from enque.core.runtime import Runtime
from tests.support.api import Tenant, data, unique
from tests.support.helpdesk import add_agent, add_team, new_ticket
from tests.support.statements import statements

POLICY = {"name": "High", "match": {"priority": "High"}, "targets": {"firstResponseMinutes": 60}}
VALUES = {"plan": "gold", "seats": 5, "addons": ["sso"]}


async def define_fields(tenant: Tenant) -> None:
    for body in (
        {"key": "plan", "type": "dropdown", "options": ["gold", "silver"]},
        {"key": "seats", "type": "number"},
        {"key": "addons", "type": "multiselect", "options": ["sso", "api"]},
    ):
        field = {"entity": "ticket", "label": body["key"].title(), **body}
        data(await tenant.post("/v1/custom-fields", json=field), 201)


async def test_list_is_constant_and_never_loads_bodies(tenant: Tenant, app_runtime: Runtime):
    agent = await add_agent(app_runtime, tenant)
    team = await add_team(app_runtime, tenant)
    category = data(await tenant.post("/v1/categories", json={"name": "Sales"}), 201)
    await define_fields(tenant)
    data(await tenant.post("/v1/sla-policies", json=POLICY), 201)
    for _ in range(2):
        await new_ticket(
            tenant,
            teamId=team,
            assigneeId=agent.agent_id,
            tags=["a"],
            categoryId=category["id"],
            priority="High",
            customFields=VALUES,
        )
    params = {"tag": "a", "q": "burning"}
    with statements(app_runtime) as small:
        assert len(data(await tenant.get("/v1/tickets", params=params))) == 2
    for _ in range(10):
        await new_ticket(
            tenant,
            teamId=team,
            assigneeId=agent.agent_id,
            tags=["a", "b"],
            categoryId=category["id"],
            priority="High",
            customFields=VALUES,
        )
    with statements(app_runtime) as large:
        page = data(await tenant.get("/v1/tickets", params=params))
        assert len(page) == 12 and all(t["team"]["id"] == team for t in page)
        assert all(t["customFields"] == VALUES and t["slaDueAt"] for t in page)
    # the page and its custom field values; on SQLite also the capped counts that pick the
    # plans of the tag and the search filters
    assert len(small) == len(large) <= 4
    assert not any("ticket_bodies" in s or "FROM comments" in s for s in large)


async def test_sla_due_sort_is_constant(tenant: Tenant, app_runtime: Runtime):
    await define_fields(tenant)
    data(await tenant.post("/v1/sla-policies", json=POLICY), 201)
    for priority in ("High", "Low"):
        await new_ticket(tenant, priority=priority, customFields=VALUES)
    params = {"sort": "slaDue"}
    with statements(app_runtime) as small:
        assert len(data(await tenant.get("/v1/tickets", params=params))) == 2
    for i in range(12):
        await new_ticket(tenant, priority=("High", "Low")[i % 2], customFields=VALUES)
    with statements(app_runtime) as large:
        page = data(await tenant.get("/v1/tickets", params=params))
        assert [t["priority"] for t in page] == ["High"] * 7 + ["Low"] * 7
    # tickets with a target due, the others, and the page's custom field values
    assert len(small) == len(large) <= 3


async def test_customer_and_company_lists_are_constant(tenant: Tenant, app_runtime: Runtime):
    for entity in ("user", "company"):
        body = {"entity": entity, "key": "tier", "label": "Tier", "type": "text"}
        data(await tenant.post("/v1/custom-fields", json=body), 201)
    tier = {"tier": "gold"}

    async def add(count: int) -> None:
        for _ in range(count):
            name = unique("c")
            user = {"email": f"{name}@example.com", "customFields": tier}
            data(await tenant.post("/v1/users", json=user), 201)
            data(await tenant.post("/v1/companies", json={"name": name, "customFields": tier}), 201)

    await add(2)
    with statements(app_runtime) as small:
        users = data(await tenant.get("/v1/users"))
        companies = data(await tenant.get("/v1/companies"))
    assert len(users) == len(companies) == 2
    await add(8)
    with statements(app_runtime) as large:
        users = data(await tenant.get("/v1/users"))
        companies = data(await tenant.get("/v1/companies"))
    assert len(users) == len(companies) == 10
    assert all(u["customFields"] == tier for u in users + companies)
    assert len(small) == len(large) <= 4  # a page and its values, for each


async def test_detail_is_constant(tenant: Tenant, app_runtime: Runtime):
    agent = await add_agent(app_runtime, tenant)
    team = await add_team(app_runtime, tenant)
    await define_fields(tenant)
    data(await tenant.post("/v1/sla-policies", json=POLICY), 201)
    bare = await new_ticket(tenant)
    full = await new_ticket(
        tenant,
        teamId=team,
        assigneeId=agent.agent_id,
        tags=["x"],
        priority="High",
        customFields=VALUES,
    )
    for i in range(4):
        data(await tenant.post(f"/v1/tickets/{full['id']}/notes", json={"content": f"n{i}"}), 201)
        data(await tenant.post(f"/v1/tickets/{full['id']}/reply", json={"content": f"r{i}"}), 201)
    with statements(app_runtime) as small:
        data(await tenant.get(f"/v1/tickets/{bare['id']}"))
    with statements(app_runtime) as large:
        detail = data(await tenant.get(f"/v1/tickets/{full['id']}"))
    assert detail["counts"] == {"comments": 8, "replies": 4, "notes": 4, "customerMessages": 0}
    assert detail["customFields"] == VALUES and detail["slaPolicyId"] is not None
    # the ticket with its SLA state and body, the comment counts, the files of the first
    # message, the custom field values (and the token check when it is not cached)
    assert len(small) == len(large) <= 5


async def test_thread_is_constant(tenant: Tenant, app_runtime: Runtime):
    ticket = await new_ticket(tenant)
    path = f"/v1/tickets/{ticket['id']}"
    data(await tenant.post(f"{path}/notes", json={"content": "first"}), 201)
    with statements(app_runtime) as small:
        assert len(data(await tenant.get(f"{path}/comments"))) == 1
    agent = await add_agent(app_runtime, tenant)
    for i in range(6):
        data(await tenant.post(f"{path}/reply", json={"content": f"r{i}"}), 201)
        data(await tenant.post(f"{path}/notes", json={"content": f"n{i}"}, token=agent.token), 201)
    with statements(app_runtime) as large:
        thread = data(await tenant.get(f"{path}/comments"))
    assert len(thread) == 13 and thread[-1]["author"]["id"] == agent.agent_id
    assert len(small) == len(large) <= 3
