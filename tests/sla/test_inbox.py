"""SLA state on the inbox rows: the fields, `sort=slaDue`, the `breached` filter, paging."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from sqlalchemy import update

from enque.core.db import now
from enque.core.runtime import Runtime
from enque.sla.models import TicketSla
from enque.sla.service import check_due, sync_ticket
from enque.tickets.models import Ticket
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import new_ticket

HOUR = 3600
NO_SLA = {
    "slaPolicyId": None,
    "firstResponseDueAt": None,
    "nextResponseDueAt": None,
    "resolutionDueAt": None,
    "slaDueAt": None,
    "slaPausedAt": None,
    "slaBreached": [],
}


async def policy(tenant: Tenant, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "Standard")
    body.setdefault("targets", {"firstResponseMinutes": 60, "resolutionMinutes": 480})
    return data(await tenant.post("/v1/sla-policies", json=body), 201)  # type: ignore[no-any-return]


async def set_ticket(runtime: Runtime, ticket_id: str, **values: Any) -> None:
    async with runtime.db.transaction() as session:
        await session.execute(update(Ticket).where(Ticket.id == ticket_id).values(**values))


async def set_sla(runtime: Runtime, ticket_id: str, **values: Any) -> None:
    """Write a ticket's SLA state directly (`updated_at` in the past unless given)."""
    values.setdefault("updated_at", now() - 5000)
    async with runtime.db.transaction() as session:
        await session.execute(
            update(TicketSla).where(TicketSla.ticket_id == ticket_id).values(**values)
        )


def sla_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in NO_SLA}


async def walk(tenant: Tenant, limit: int, **params: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        body = (await tenant.get("/v1/tickets", params=query)).json()
        assert body["success"], body
        seen += [t["id"] for t in body["data"]]
        cursor = body["meta"]["nextCursor"]
        if cursor is None:
            return seen


async def test_rows_and_detail_carry_the_sla_state(tenant: Tenant, app_runtime: Runtime) -> None:
    made = await policy(tenant, match={"priority": "High"})
    ticket = await new_ticket(tenant, priority="High")
    other = await new_ticket(tenant, priority="Low")
    rows = {t["id"]: t for t in data(await tenant.get("/v1/tickets"))}
    first_due = ticket["createdAt"] + HOUR
    expected = {
        "slaPolicyId": made["id"],
        "firstResponseDueAt": first_due,
        "nextResponseDueAt": None,
        "resolutionDueAt": ticket["createdAt"] + 8 * HOUR,
        "slaDueAt": first_due,
        "slaPausedAt": None,
        "slaBreached": [],
    }
    assert sla_fields(rows[ticket["id"]]) == expected
    assert sla_fields(rows[other["id"]]) == NO_SLA
    assert sla_fields(data(await tenant.get(f"/v1/tickets/{ticket['id']}"))) == expected

    await check_due(app_runtime, at=first_due + 1)
    row = data(await tenant.get("/v1/tickets", params={"breached": "true"}))
    assert [t["id"] for t in row] == [ticket["id"]]
    assert row[0]["slaBreached"] == ["firstResponse"] and row[0]["slaDueAt"] == first_due
    assert [
        t["id"] for t in data(await tenant.get("/v1/tickets", params={"breached": "false"}))
    ] == [other["id"]]
    # waiting on the customer pauses the clock: nothing due, the pause shows
    data(await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"status": "With User"}))
    paused = data(await tenant.get(f"/v1/tickets/{ticket['id']}"))
    assert paused["slaPausedAt"] is not None and paused["slaDueAt"] is None
    # answering meets the first response (late); the resolution is what is due next
    data(await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"status": "Open"}))
    reply = await tenant.post(f"/v1/tickets/{ticket['id']}/reply", json={"content": "<p>Hi</p>"})
    assert reply.status_code == 201, reply.text
    answered = data(await tenant.get(f"/v1/tickets/{ticket['id']}"))
    assert answered["slaDueAt"] == answered["resolutionDueAt"]
    assert answered["slaBreached"] == ["firstResponse"]


async def test_sla_due_sort_pages_and_breached_filter(tenant: Tenant, app_runtime: Runtime) -> None:
    made = await policy(tenant, match={"priority": "High"})
    base = now() - 10_000
    # (priority, SLA due offset or None, breached, updated offset)
    spec = [
        ("High", 500, False, 10),
        ("High", 100, False, 20),
        ("High", 100, False, 30),
        ("High", None, False, 300),  # under a policy, nothing due (met or paused)
        ("Low", None, False, 900),  # no policy
        ("Low", None, False, 200),
        ("High", 300, True, 40),
    ]
    made_ids = []
    for priority, due, breached, updated in spec:
        ticket = await new_ticket(tenant, priority=priority)
        await set_ticket(app_runtime, ticket["id"], updated_at=base + updated)
        if priority == "High":
            await set_sla(
                app_runtime,
                ticket["id"],
                next_due_at=None if due is None else base + HOUR + due,
                is_breached=breached,
                breached=["firstResponse"] if breached else [],
            )
        made_ids.append(ticket["id"])

    due_first = sorted(
        (base + HOUR + due, ticket_id)
        for (_, due, _, _), ticket_id in zip(spec, made_ids, strict=True)
        if due is not None
    )
    expected = [ticket_id for _, ticket_id in due_first] + [
        made_ids[4],  # the rest, most recently updated first
        made_ids[3],
        made_ids[5],
    ]
    for limit in range(1, 9):
        assert await walk(tenant, limit, sort="slaDue") == expected, limit

    assert await walk(tenant, 2, sort="slaDue", breached="true") == [made_ids[6]]
    assert await walk(tenant, 2, breached="true") == [made_ids[6]]
    not_breached = [i for i in expected if i != made_ids[6]]
    assert await walk(tenant, 2, sort="slaDue", breached="false") == not_breached
    assert set(await walk(tenant, 3, breached="false")) == set(not_breached)
    assert await walk(tenant, 2, sort="slaDue", status="Open", priority="Low") == [
        made_ids[4],
        made_ids[5],
    ]
    body = (
        await tenant.get("/v1/tickets", params={"sort": "slaDue", "includeTotal": "true"})
    ).json()
    assert body["meta"]["total"] == 7
    breached_row = body["data"][2]
    assert breached_row["id"] == made_ids[6] and breached_row["slaPolicyId"] == made["id"]
    assert breached_row["slaBreached"] == ["firstResponse"]

    # saved views take the same filter and sort
    view = data(
        await tenant.post(
            "/v1/views",
            json={"name": "Breached", "filters": {"breached": True}, "sort": "slaDue"},
        ),
        201,
    )
    counts = {v["id"]: v["count"] for v in data(await tenant.get("/v1/views/counts"))}
    assert counts[view["id"]] == 1

    first = (await tenant.get("/v1/tickets", params={"sort": "slaDue", "limit": 1})).json()
    cursor = first["meta"]["nextCursor"]
    error(
        await tenant.get("/v1/tickets", params={"sort": "-updatedAt", "cursor": cursor}),
        422,
        "VALIDATION_ERROR",
    )
    error(
        await tenant.get("/v1/tickets", params={"sort": "slaDue", "cursor": "garbage"}),
        422,
        "VALIDATION_ERROR",
    )
    error(await tenant.get("/v1/tickets", params={"breached": "maybe"}), 422, "VALIDATION_ERROR")


async def test_sla_rows_of_other_workspaces_stay_out(
    tenant: Tenant, make_tenant: Any, app_runtime: Runtime
) -> None:
    await policy(tenant)
    mine = await new_ticket(tenant)
    other = await make_tenant()
    assert await walk(other, 5, sort="slaDue") == []
    assert await walk(other, 5, breached="false") == []
    theirs = await new_ticket(other)
    assert await walk(other, 5, sort="slaDue") == [theirs["id"]]
    assert await walk(tenant, 5, sort="slaDue") == [mine["id"]]


async def test_sla_due_paging_while_tickets_change(tenant: Tenant, app_runtime: Runtime) -> None:
    """Page through `sort=slaDue` while dues move both ways and tickets enter and leave SLA."""
    rng = random.Random(11)
    fast = await policy(tenant, name="Fast", match={"priority": "High"})
    await policy(
        tenant, name="Slow", match={"priority": "Low"}, targets={"firstResponseMinutes": 600}
    )
    base = now() - 5000
    initial = []
    for i in range(24):
        ticket = await new_ticket(tenant, priority=rng.choice(["High", "Low", "Medium"]))
        initial.append(ticket["id"])
        await set_ticket(app_runtime, ticket["id"], updated_at=base + i)

    async def churn(updated: set[str]) -> None:
        await new_ticket(tenant, priority=rng.choice(["High", "Low", "Medium"]))
        for ticket_id in rng.sample(initial, 3):  # a policy re-matches: dues move either way
            response = await tenant.patch(
                f"/v1/tickets/{ticket_id}",
                json={"priority": rng.choice(["High", "Low", "Medium"])},
            )
            assert response.status_code == 200, response.text
            updated.add(ticket_id)
        # a policy change reaches tickets through the SLA domain alone (the ticket row stays)
        minutes = rng.choice([5, 60, 900])
        await tenant.patch(
            f"/v1/sla-policies/{fast['id']}", json={"targets": {"firstResponseMinutes": minutes}}
        )
        for ticket_id in rng.sample(initial, 2):
            async with app_runtime.db.transaction() as session:
                await sync_ticket(session, workspace_id=tenant.workspace_id, ticket_id=ticket_id)
            updated.add(ticket_id)

    for rounds in range(3):
        async with app_runtime.db.transaction() as session:  # earlier rounds' changes are old
            await session.execute(
                update(Ticket).where(Ticket.id.in_(initial)).values(updated_at=base)
            )
            await session.execute(
                update(TicketSla).where(TicketSla.ticket_id.in_(initial)).values(updated_at=base)
            )
        updated: set[str] = set()
        seen: list[str] = []
        cursor = None
        while True:
            params = {"sort": "slaDue", "limit": 4, **({"cursor": cursor} if cursor else {})}
            response, _ = await asyncio.gather(
                tenant.get("/v1/tickets", params=params), churn(updated)
            )
            body = response.json()
            assert body["success"], body
            seen += [t["id"] for t in body["data"]]
            cursor = body["meta"]["nextCursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)), f"round {rounds}: a ticket was listed twice"
        for ticket_id in initial:
            if ticket_id not in updated:
                assert ticket_id in seen, f"round {rounds}: an unchanged ticket was skipped"
