"""SLA policies and business hours on real tickets: dues, pauses, breaches, lists, reports."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from enque.core.runtime import Runtime
from enque.sla.business_hours import Calendar, Interval, parse_clock
from enque.sla.models import TicketSla
from enque.sla.service import WARN_BEFORE, check_due
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import new_ticket

HOUR = 3600


async def policy(tenant: Tenant, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "Standard")
    body.setdefault("targets", {"firstResponseMinutes": 60, "resolutionMinutes": 480})
    return data(await tenant.post("/v1/sla-policies", json=body), 201)  # type: ignore[no-any-return]


async def sla_of(tenant: Tenant, ticket_id: str) -> dict[str, Any]:
    return data(await tenant.get(f"/v1/tickets/{ticket_id}/sla"))  # type: ignore[no-any-return]


async def test_business_hours_and_policies_are_managed(tenant: Tenant) -> None:
    assert data(await tenant.get("/v1/business-hours")) == {
        "timezone": "UTC",
        "intervals": [],
        "holidays": [],
        "alwaysOpen": True,
    }
    body = {
        "timezone": "Europe/Berlin",
        "intervals": [
            {"day": 0, "start": "09:00", "end": "12:00"},
            {"day": 0, "start": "13:00", "end": "17:30"},
        ],
        "holidays": ["2026-12-25", "2026-12-24", "2026-12-25"],
    }
    saved = data(await tenant.put("/v1/business-hours", json=body))
    assert saved["holidays"] == ["2026-12-24", "2026-12-25"] and not saved["alwaysOpen"]
    assert data(await tenant.get("/v1/business-hours")) == saved
    for bad in (
        {**body, "timezone": "Mars/Olympus"},
        {**body, "intervals": [{"day": 1, "start": "10:00", "end": "09:00"}]},
        {**body, "holidays": ["2026-13-01"]},
        {**body, "intervals": [{"day": 7, "start": "10:00", "end": "11:00"}]},
    ):
        error(await tenant.put("/v1/business-hours", json=bad), 422, "VALIDATION_ERROR")
    made = await policy(tenant, match={"priority": "High"}, position=2)
    assert made["match"] == {"priority": "High"}
    assert made["targets"] == {
        "firstResponseMinutes": 60,
        "nextResponseMinutes": None,
        "resolutionMinutes": 480,
    }
    other = await policy(tenant, name="Default", position=5)
    patched = data(await tenant.patch(f"/v1/sla-policies/{other['id']}", json={"position": 1}))
    assert patched["position"] == 1 and patched["name"] == "Default"
    listed = data(await tenant.get("/v1/sla-policies"))
    assert [p["id"] for p in listed] == [other["id"], made["id"]]
    assert (await tenant.delete(f"/v1/sla-policies/{other['id']}")).status_code == 204
    assert [p["id"] for p in data(await tenant.get("/v1/sla-policies"))] == [made["id"]]


async def test_a_matching_ticket_gets_its_due_times(tenant: Tenant) -> None:
    urgent = await policy(
        tenant,
        name="Urgent",
        match={"priority": "Critical"},
        targets={"firstResponseMinutes": 15, "resolutionMinutes": 120},
    )
    await policy(tenant, name="Everything else", position=10)
    critical = await new_ticket(tenant, priority="Critical")
    state = await sla_of(tenant, critical["id"])
    assert state["policyId"] == urgent["id"]
    assert state["firstResponseDueAt"] == critical["createdAt"] + 15 * 60
    assert state["resolutionDueAt"] == critical["createdAt"] + 120 * 60
    assert state["nextDueAt"] == state["firstResponseDueAt"] and state["breached"] == []
    low = await new_ticket(tenant, priority="Low")
    assert (await sla_of(tenant, low["id"]))["firstResponseDueAt"] == low["createdAt"] + HOUR
    # a priority change re-matches the policy
    await tenant.patch(f"/v1/tickets/{low['id']}", json={"priority": "Critical"})
    assert (await sla_of(tenant, low["id"]))["policyId"] == urgent["id"]


async def test_no_policy_no_state(tenant: Tenant, make_tenant: Any) -> None:
    ticket = await new_ticket(tenant)
    assert (await sla_of(tenant, ticket["id"]))["policyId"] is None
    other = await make_tenant()
    error(await other.get(f"/v1/tickets/{ticket['id']}/sla"), 404, "NOT_FOUND")


async def test_business_hours_push_the_due_times(tenant: Tenant) -> None:
    intervals = [{"day": d, "start": "09:00", "end": "17:00"} for d in range(5)]
    await tenant.put(
        "/v1/business-hours", json={"timezone": "America/New_York", "intervals": intervals}
    )
    await policy(tenant)
    ticket = await new_ticket(tenant)
    cal = Calendar(
        "America/New_York",
        tuple(Interval(d, parse_clock("09:00"), parse_clock("17:00")) for d in range(5)),
    )
    state = await sla_of(tenant, ticket["id"])
    assert state["firstResponseDueAt"] == cal.add(ticket["createdAt"], HOUR)
    assert state["resolutionDueAt"] == cal.add(ticket["createdAt"], 8 * HOUR)


async def test_with_user_pauses_the_clock(tenant: Tenant, app_runtime: Runtime) -> None:
    await policy(tenant)
    ticket = await new_ticket(tenant)
    before = await sla_of(tenant, ticket["id"])
    await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"status": "With User"})
    paused = await sla_of(tenant, ticket["id"])
    assert paused["pausedAt"] is not None and paused["nextDueAt"] is None
    async with app_runtime.db.transaction() as session:  # the pause began two hours ago
        await session.execute(
            update(TicketSla)
            .where(TicketSla.ticket_id == ticket["id"])
            .values(paused_at=TicketSla.paused_at - 2 * HOUR)
        )
    await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"status": "Open"})
    resumed = await sla_of(tenant, ticket["id"])
    assert resumed["pausedAt"] is None
    shift = resumed["resolutionDueAt"] - before["resolutionDueAt"]
    assert 2 * HOUR <= shift <= 2 * HOUR + 5
    assert resumed["firstResponseDueAt"] - before["firstResponseDueAt"] == shift


async def test_breaches_and_warnings_are_raised_once(
    tenant: Tenant, app_runtime: Runtime, events: list[Any]
) -> None:
    await policy(tenant)
    ticket = await new_ticket(tenant)
    state = await sla_of(tenant, ticket["id"])
    first_due = state["firstResponseDueAt"]
    await check_due(app_runtime, at=first_due - WARN_BEFORE + 1)
    await check_due(app_runtime, at=first_due - WARN_BEFORE + 2)
    mine = [
        e for e in events if e.type.startswith("sla.") and e.workspace_id == tenant.workspace_id
    ]
    assert [(e.type, e.payload["target"]) for e in mine] == [("sla.warning", "firstResponse")]
    await check_due(app_runtime, at=first_due)
    await check_due(app_runtime, at=first_due + 5)
    mine = [
        e for e in events if e.type.startswith("sla.") and e.workspace_id == tenant.workspace_id
    ]
    assert [(e.type, e.payload["target"]) for e in mine] == [
        ("sla.warning", "firstResponse"),
        ("sla.breached", "firstResponse"),
    ]
    assert mine[1].payload["ticketId"] == ticket["id"] and mine[1].payload["dueAt"] == first_due
    breached = await sla_of(tenant, ticket["id"])
    assert breached["isBreached"] and breached["breached"] == ["firstResponse"]
    # the agent answers: first response met (late), the resolution is next
    reply = await tenant.post(f"/v1/tickets/{ticket['id']}/reply", json={"content": "<p>Hi</p>"})
    assert reply.status_code == 201, reply.text
    after = await sla_of(tenant, ticket["id"])
    assert after["nextDueAt"] == after["resolutionDueAt"]
    assert after["breached"] == ["firstResponse"]


async def test_a_reply_in_time_meets_the_target(tenant: Tenant, app_runtime: Runtime) -> None:
    await policy(tenant)
    ticket = await new_ticket(tenant)
    await tenant.post(f"/v1/tickets/{ticket['id']}/reply", json={"content": "<p>On it</p>"})
    state = await sla_of(tenant, ticket["id"])
    await check_due(app_runtime, at=state["firstResponseDueAt"] + 60)
    assert (await sla_of(tenant, ticket["id"]))["breached"] == []
    closed = await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"status": "Closed"})
    assert closed.status_code == 200
    done = await sla_of(tenant, ticket["id"])
    assert done["nextDueAt"] is None and done["breached"] == []


async def test_due_list_and_attainment_report(tenant: Tenant, app_runtime: Runtime) -> None:
    team = data(await tenant.post("/v1/teams", json={"name": "Desk"}), 201)
    await policy(
        tenant, name="Fast", match={"priority": "High"}, targets={"firstResponseMinutes": 10}
    )
    await policy(tenant, name="Slow", position=1, targets={"firstResponseMinutes": 600})
    slow = await new_ticket(tenant, priority="Low")
    fast = await new_ticket(tenant, priority="High", teamId=team["id"])
    listed = data(await tenant.get("/v1/sla/tickets"))
    assert [t["ticketId"] for t in listed] == [fast["id"], slow["id"]]
    page = await tenant.get("/v1/sla/tickets", params={"limit": 1})
    following = page.json()["meta"]["nextCursor"]
    rest = data(await tenant.get("/v1/sla/tickets", params={"limit": 1, "cursor": following}))
    assert [t["ticketId"] for t in rest] == [slow["id"]]
    fast_state = await sla_of(tenant, fast["id"])
    await check_due(app_runtime, at=fast_state["firstResponseDueAt"] + 1)
    breached = data(await tenant.get("/v1/sla/tickets", params={"breached": "true"}))
    assert [t["ticketId"] for t in breached] == [fast["id"]]
    assert breached[0]["subject"] == fast["subject"] and breached[0]["teamId"] == team["id"]
    by_team = data(await tenant.get("/v1/sla/report", params={"by": "team"}))
    assert by_team == [
        {"groupId": team["id"], "tickets": 1, "breached": 1, "attainment": 0.0},
        {"groupId": None, "tickets": 1, "breached": 0, "attainment": 1.0},
    ]
    by_agent = data(await tenant.get("/v1/sla/report", params={"by": "agent"}))
    assert sum(r["tickets"] for r in by_agent) == 2


async def test_a_closed_ticket_owes_nothing_more(tenant: Tenant, app_runtime: Runtime) -> None:
    await policy(tenant, targets={"firstResponseMinutes": 60, "nextResponseMinutes": 30})
    ticket = await new_ticket(tenant)
    closed = await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"status": "Closed"})
    assert closed.status_code == 200
    state = await sla_of(tenant, ticket["id"])
    assert state["nextDueAt"] is None
    from enque.core.db import unit
    from enque.sla.service import sync_ticket

    async with app_runtime.db.transaction() as session, unit(session):
        await sync_ticket(
            session,
            workspace_id=tenant.workspace_id,
            ticket_id=ticket["id"],
            at=state["firstResponseDueAt"] + 3600,
        )
    assert (await sla_of(tenant, ticket["id"]))["breached"] == []
