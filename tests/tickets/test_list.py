import asyncio
import random
from typing import Any

from sqlalchemy import update

from enque.core.db import now
from enque.core.runtime import Runtime
from enque.tickets import queries
from enque.tickets.models import Ticket
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import add_agent, add_team, new_ticket


async def set_columns(runtime: Runtime, ticket_id: str, **values: Any) -> None:
    """Write ticket columns directly (times in the past, a mailbox id the email domain owns)."""
    async with runtime.db.transaction() as session:
        await session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )


async def ids(tenant: Tenant, **params: Any) -> list[str]:
    return [t["id"] for t in data(await tenant.get("/v1/tickets", params=params))]


async def test_filters(tenant: Tenant, app_runtime: Runtime):
    agent = await add_agent(app_runtime, tenant)
    team = await add_team(app_runtime, tenant)
    category = data(await tenant.post("/v1/categories", json={"name": "Returns"}), 201)
    company = data(
        await tenant.post(
            "/v1/companies", json={"name": "Umbrella", "emailDomains": ["umbrella.test"]}
        ),
        201,
    )
    mine = await new_ticket(tenant, assigneeId=tenant.agent_id, priority="High", tags=["vip"])
    theirs = await new_ticket(tenant, assigneeId=agent.agent_id, teamId=team, status="Closed")
    nobody = await new_ticket(
        tenant,
        categoryId=category["id"],
        status="With User",
        customer={"email": "alice@umbrella.test"},
        tags=["vip", "refund"],
    )
    await set_columns(app_runtime, nobody["id"], mailbox_id="mbx-1")
    base = now() - 1000
    for offset, ticket in enumerate((mine, theirs, nobody)):
        await set_columns(
            app_runtime,
            ticket["id"],
            created_at=base + offset * 100,
            updated_at=base + offset * 100,
        )

    assert await ids(tenant, assigneeId="me") == [mine["id"]]
    assert await ids(tenant, assigneeId=agent.agent_id) == [theirs["id"]]
    assert await ids(tenant, assigneeId="none") == [nobody["id"]]
    assert await ids(tenant, status=["Closed", "With User"]) == [nobody["id"], theirs["id"]]
    assert await ids(tenant, status="Open") == [mine["id"]]
    assert await ids(tenant, priority="High") == [mine["id"]]
    assert await ids(tenant, teamId=team) == [theirs["id"]]
    assert await ids(tenant, categoryId=category["id"]) == [nobody["id"]]
    assert await ids(tenant, userId=nobody["customer"]["id"]) == [nobody["id"]]
    assert await ids(tenant, companyId=company["id"]) == [nobody["id"]]
    assert await ids(tenant, mailboxId="mbx-1") == [nobody["id"]]
    assert await ids(tenant, tag="VIP") == [nobody["id"], mine["id"]]
    assert await ids(tenant, tag="refund") == [nobody["id"]]
    assert await ids(tenant, createdAfter=base + 100) == [nobody["id"], theirs["id"]]
    assert await ids(tenant, createdBefore=base + 100) == [mine["id"]]
    assert await ids(tenant, updatedAfter=base + 150, updatedBefore=base + 250) == [nobody["id"]]
    assert await ids(tenant, teamId="unknown") == []

    error(await tenant.get("/v1/tickets", params={"status": "Pending"}), 422, "VALIDATION_ERROR")
    error(await tenant.get("/v1/tickets", params={"sort": "subject"}), 422, "VALIDATION_ERROR")
    error(await tenant.get("/v1/tickets", params={"cursor": "garbage"}), 422, "VALIDATION_ERROR")


async def test_common_and_rare_tags(tenant: Tenant, monkeypatch):
    tagged = [await new_ticket(tenant, tags=["common"]) for _ in range(3)]
    await new_ticket(tenant)
    expected = [t["id"] for t in reversed(tagged)]
    assert await ids(tenant, tag="common") == expected
    monkeypatch.setattr(queries, "COMMON_TAG", 2)
    assert await ids(tenant, tag="common") == expected
    assert await ids(tenant, tag="rare") == []


async def test_sorts_and_pages(tenant: Tenant, app_runtime: Runtime):
    base = now() - 10_000
    spec = [  # (priority, due offset or None, created offset, updated offset)
        ("Low", 50, 0, 900),
        ("Critical", None, 100, 100),
        ("High", 10, 200, 300),
        ("Critical", 30, 300, 200),
        ("Medium", None, 400, 400),
        ("High", 20, 500, 800),
    ]
    made = []
    for priority, due, created, updated in spec:
        ticket = await new_ticket(tenant, priority=priority)
        await set_columns(
            app_runtime,
            ticket["id"],
            created_at=base + created,
            updated_at=base + updated,
            due_at=None if due is None else base + 100_000 + due,
        )
        made.append(ticket["id"])

    def order(*positions: int) -> list[str]:
        return [made[p] for p in positions]

    async def walk(sort: str) -> list[str]:
        seen, cursor = [], None
        while True:
            params = {"sort": sort, "limit": 2, **({"cursor": cursor} if cursor else {})}
            body = (await tenant.get("/v1/tickets", params=params)).json()
            seen += [t["id"] for t in body["data"]]
            cursor = body["meta"]["nextCursor"]
            if cursor is None:
                return seen

    assert await walk("-updatedAt") == order(0, 5, 4, 2, 3, 1)
    assert await walk("-createdAt") == order(5, 4, 3, 2, 1, 0)
    assert await walk("priority") == order(3, 1, 5, 2, 4, 0)
    assert await walk("dueAt") == order(2, 5, 3, 0, 1, 4)
    body = (await tenant.get("/v1/tickets", params={"limit": 4, "includeTotal": "true"})).json()
    assert body["meta"]["total"] == 6 and len(body["data"]) == 4 and body["meta"]["limit"] == 4


async def test_paging_while_tickets_change(tenant: Tenant, app_runtime: Runtime):
    """Page through the inbox while another task creates and updates tickets."""
    rng = random.Random(7)
    base = now() - 5000
    initial = []
    for i in range(20):
        ticket = await new_ticket(tenant, priority=rng.choice(["Low", "Medium", "High"]))
        await set_columns(app_runtime, ticket["id"], updated_at=base + i, created_at=base + i)
        initial.append(ticket["id"])

    async def churn(updated: set[str]) -> None:
        await new_ticket(tenant)
        for ticket_id in rng.sample(initial, 4):
            fields = {
                "priority": rng.choice(["Low", "Critical"]),
                "dueAt": rng.randint(now(), now() + 10**6),
            }
            response = await tenant.patch(f"/v1/tickets/{ticket_id}", json=fields)
            assert response.status_code == 200, response.text
            updated.add(ticket_id)

    for sort in ("-updatedAt", "priority", "-createdAt", "dueAt"):
        async with app_runtime.db.transaction() as session:  # earlier rounds' changes are old now
            await session.execute(
                update(Ticket)
                .where(Ticket.id.in_(initial))
                .values(updated_at=base)
                .execution_options(synchronize_session=False)
            )
        updated: set[str] = set()
        seen: list[str] = []
        cursor = None
        while True:
            params = {"sort": sort, "limit": 4, **({"cursor": cursor} if cursor else {})}
            response, _ = await asyncio.gather(
                tenant.get("/v1/tickets", params=params), churn(updated)
            )
            body = response.json()
            seen += [t["id"] for t in body["data"]]
            cursor = body["meta"]["nextCursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)), f"{sort}: a ticket was listed twice"
        for ticket_id in initial:
            if ticket_id not in updated:
                assert ticket_id in seen, f"{sort}: an unchanged ticket was skipped"


async def test_merged_tickets_hidden_unless_asked(tenant: Tenant):
    target, source = await new_ticket(tenant), await new_ticket(tenant)
    data(
        await tenant.post(
            f"/v1/tickets/{target['id']}/merge", json={"sourceTicketIds": [source["id"]]}
        )
    )
    assert await ids(tenant) == [target["id"]]
    assert set(await ids(tenant, includeMerged="true")) == {target["id"], source["id"]}
