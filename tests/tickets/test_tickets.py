import asyncio

from sqlalchemy import update

from enque.core.runtime import Runtime
from enque.tickets import service
from enque.tickets.models import Ticket
from enque.tickets.schemas import TicketDetail, TicketSummary
from enque.tickets.seams import MAILBOXES
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import add_agent, add_team, new_ticket

SUMMARY_KEYS = {
    "id",
    "number",
    "subject",
    "status",
    "priority",
    "tags",
    "dueAt",
    "isRead",
    "customer",
    "companyId",
    "assignee",
    "team",
    "category",
    "mailboxId",
    "firstResponseAt",
    "lastCustomerReplyAt",
    "lastAgentReplyAt",
    "mergedIntoTicketId",
    "createdAt",
    "updatedAt",
    "version",
    "slaPolicyId",
    "firstResponseDueAt",
    "nextResponseDueAt",
    "resolutionDueAt",
    "slaDueAt",
    "slaPausedAt",
    "slaBreached",
    "customFields",
}
DETAIL_KEYS = SUMMARY_KEYS | {
    "company",
    "cc",
    "resolvedAt",
    "closedAt",
    "mergedAt",
    "linkedTicketId",
    "deletedAt",
    "body",
    "counts",
}


def test_wire_shapes_match_the_documented_models():
    aliases = {f.alias or name for name, f in TicketSummary.model_fields.items()}
    assert aliases == SUMMARY_KEYS
    assert {f.alias or name for name, f in TicketDetail.model_fields.items()} == DETAIL_KEYS


async def test_create_with_new_customer(tenant: Tenant):
    response = await tenant.post(
        "/v1/tickets",
        json={
            "subject": "Cannot log in",
            "body": "<p onclick='x()'>Help<script>bad()</script></p>",
            "customer": {"email": "Pat@Example.com", "name": "Pat"},
            "priority": "High",
            "tags": ["Login", " VPN  issue", "login"],
            "dueAt": 2000000000,
        },
    )
    ticket = data(response, 201)
    assert set(ticket) == DETAIL_KEYS
    assert response.headers["etag"] == '"1"'
    assert ticket["number"] == 1 and ticket["version"] == 1
    assert ticket["status"] == "Open" and ticket["isRead"] is True  # an agent's ticket
    assert ticket["priority"] == "High" and ticket["tags"] == ["login", "vpn issue"]
    assert ticket["customer"]["email"] == "Pat@example.com" and ticket["customer"]["name"] == "Pat"
    assert ticket["body"] == {"content": "<p>Help</p>", "text": "Help", "attachments": []}
    assert ticket["counts"] == {"comments": 0, "replies": 0, "notes": 0, "customerMessages": 0}
    assert ticket["assignee"] is None and ticket["closedAt"] is None and ticket["cc"] == []
    assert isinstance(ticket["id"], str) and isinstance(ticket["createdAt"], int)

    again = await new_ticket(tenant, customer={"email": "pat@example.com"})
    assert again["customer"]["id"] == ticket["customer"]["id"] and again["number"] == 2


async def test_create_needs_a_customer_in_the_workspace(tenant: Tenant, make_tenant):
    error(await tenant.post("/v1/tickets", json={"subject": "x"}), 422, "VALIDATION_ERROR")
    other = await make_tenant()
    foreign = data(await other.post("/v1/users", json={"email": "f@example.com"}), 201)
    err = error(
        await tenant.post("/v1/tickets", json={"subject": "x", "userId": foreign["id"]}),
        422,
        "VALIDATION_ERROR",
    )
    assert err["details"][0]["path"] == "userId"
    error(
        await tenant.post("/v1/tickets", json={"subject": "x", "userId": "u", "unknown": 1}),
        422,
        "VALIDATION_ERROR",
    )


async def test_references_are_checked_inside_the_workspace(
    tenant: Tenant, make_tenant, app_runtime: Runtime
):
    other = await make_tenant()
    foreign_team = await add_team(app_runtime, other)
    foreign_category = data(await other.post("/v1/categories", json={"name": "Theirs"}), 201)
    for field, value in (
        ("assigneeId", other.agent_id),
        ("teamId", foreign_team),
        ("categoryId", foreign_category["id"]),
        ("mailboxId", "01900000-0000-7000-8000-000000000000"),
    ):
        err = error(
            await tenant.post(
                "/v1/tickets",
                json={"subject": "x", field: value, "customer": {"email": "c@example.com"}},
            ),
            422,
            "VALIDATION_ERROR",
        )
        assert err["details"][0]["path"] == field
    ticket = await new_ticket(tenant)
    error(
        await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"assigneeId": other.agent_id}),
        422,
        "VALIDATION_ERROR",
    )
    assert data(await tenant.get(f"/v1/tickets/{ticket['id']}"))["version"] == 1


async def test_assign_team_category(tenant: Tenant, app_runtime: Runtime):
    agent = await add_agent(app_runtime, tenant)
    team = await add_team(app_runtime, tenant, "Tier 2")
    category = data(
        await tenant.post("/v1/categories", json={"name": "Billing", "color": "#00ff00"}), 201
    )
    ticket = await new_ticket(tenant)
    changed = data(
        await tenant.patch(
            f"/v1/tickets/{ticket['id']}",
            json={
                "assigneeId": agent.agent_id,
                "teamId": team,
                "categoryId": category["id"],
                "subject": "Printer still on fire",
                "dueAt": None,
            },
        )
    )
    assert changed["assignee"]["id"] == agent.agent_id
    assert changed["assignee"]["name"].startswith("Agent ")
    assert changed["team"] == {"id": team, "name": "Tier 2"}
    assert changed["category"] == {"id": category["id"], "name": "Billing", "color": "#00ff00"}
    assert changed["subject"] == "Printer still on fire" and changed["version"] == 2
    cleared = data(await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"assigneeId": None}))
    assert cleared["assignee"] is None
    error(
        await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"status": None}),
        422,
        "VALIDATION_ERROR",
    )


async def test_stale_version_is_refused_and_nothing_written(tenant: Tenant):
    ticket = await new_ticket(tenant)
    path = f"/v1/tickets/{ticket['id']}"
    first = data(await tenant.patch(path, json={"priority": "Low", "version": 1}))
    assert first["version"] == 2
    err = error(
        await tenant.patch(path, json={"priority": "Critical", "subject": "x", "version": 1}),
        409,
        "CONFLICT",
    )
    assert err["details"] == {"version": 2}
    error(
        await tenant.patch(path, json={"priority": "Critical"}, headers={"If-Match": '"1"'}),
        409,
        "CONFLICT",
    )
    current = data(await tenant.get(path))
    assert current["priority"] == "Low" and current["subject"] == ticket["subject"]
    ok = await tenant.patch(path, json={"priority": "Critical"}, headers={"If-Match": '"2"'})
    assert data(ok)["priority"] == "Critical" and ok.headers["etag"] == '"3"'
    error(
        await tenant.patch(path, json={"priority": "High"}, headers={"If-Match": "abc"}),
        400,
        "BAD_REQUEST",
    )


async def test_concurrent_patches_with_the_same_version(tenant: Tenant):
    ticket = await new_ticket(tenant)
    path = f"/v1/tickets/{ticket['id']}"
    responses = await asyncio.gather(
        *(tenant.patch(path, json={"subject": f"edit {i}", "version": 1}) for i in range(5))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409, 409, 409, 409]
    assert data(await tenant.get(path))["version"] == 2


async def test_status_rules(tenant: Tenant, app_runtime: Runtime):
    ticket = await new_ticket(tenant, status="Unread")
    path = f"/v1/tickets/{ticket['id']}"
    assert ticket["status"] == "Unread"
    opened = data(await tenant.patch(path, json={"isRead": True}))
    assert opened["status"] == "Open" and opened["isRead"] is True

    closed = data(await tenant.patch(path, json={"status": "Closed"}))
    assert closed["closedAt"] is not None and closed["resolvedAt"] == closed["closedAt"]
    reopened = data(await tenant.patch(path, json={"status": "In Progress"}))
    assert reopened["closedAt"] is None and reopened["resolvedAt"] == closed["resolvedAt"]

    activities = data(await tenant.get(f"{path}/activities"))
    verbs = [a["verb"] for a in activities]
    assert verbs[0] == "ticket.created" and verbs.count("ticket.status_changed") == 3
    change = next(a for a in activities if a["verb"] == "ticket.status_changed")
    assert change["before"] == {"status": "Unread"} and change["after"] == {"status": "Open"}
    assert change["actor"] == {
        "type": "agent",
        "id": tenant.agent_id,
        "name": change["actor"]["name"],
    }


async def test_soft_delete_and_restore(tenant: Tenant, app_runtime: Runtime, events):
    agent = await add_agent(app_runtime, tenant, "agent")
    ticket = await new_ticket(tenant)
    path = f"/v1/tickets/{ticket['id']}"
    error(await tenant.delete(path, token=agent.token), 403, "FORBIDDEN")
    assert (await tenant.delete(path)).status_code == 204
    assert (await tenant.delete(path)).status_code == 204
    assert data(await tenant.get("/v1/tickets")) == []
    assert data(await tenant.get(path))["deletedAt"] is not None
    error(await tenant.patch(path, json={"priority": "Low"}), 409, "CONFLICT")
    error(await tenant.post(f"{path}/restore", token=agent.token), 403, "FORBIDDEN")
    restored = data(await tenant.post(f"{path}/restore"))
    assert restored["deletedAt"] is None
    assert [t["id"] for t in data(await tenant.get("/v1/tickets"))] == [ticket["id"]]
    mine = [e for e in events if e.workspace_id == tenant.workspace_id]
    assert [e.type for e in mine].count("ticket.deleted") == 1
    assert mine[-1].type == "ticket.updated" and mine[-1].payload["changes"]["deletedAt"][1] is None


async def test_bulk_update_reports_each_id(tenant: Tenant, make_tenant, app_runtime: Runtime):
    a, b = await new_ticket(tenant), await new_ticket(tenant)
    other = await make_tenant()
    foreign = await new_ticket(other)
    agent = await add_agent(app_runtime, tenant)
    results = data(
        await tenant.post(
            "/v1/tickets/bulk",
            json={
                "ids": [a["id"], "nope", foreign["id"], b["id"]],
                "set": {"status": "With User", "assigneeId": agent.agent_id},
            },
        )
    )
    assert [(r["id"], r["success"]) for r in results] == [
        (a["id"], True),
        ("nope", False),
        (foreign["id"], False),
        (b["id"], True),
    ]
    assert results[1]["error"]["code"] == "NOT_FOUND" and results[1]["ticket"] is None
    assert results[0]["ticket"]["status"] == "With User"
    assert results[3]["ticket"]["assignee"]["id"] == agent.agent_id
    assert data(await other.get(f"/v1/tickets/{foreign['id']}"))["status"] == "Open"
    error(
        await tenant.post(
            "/v1/tickets/bulk", json={"ids": [a["id"]], "set": {"teamId": "missing"}}
        ),
        422,
        "VALIDATION_ERROR",
    )
    error(
        await tenant.post("/v1/tickets/bulk", json={"ids": [a["id"]], "set": {"subject": "x"}}),
        422,
        "VALIDATION_ERROR",
    )


async def test_numbers_are_unique_under_concurrency(tenant: Tenant):
    tickets = await asyncio.gather(*(new_ticket(tenant) for _ in range(12)))
    assert sorted(t["number"] for t in tickets) == list(range(1, 13))


async def test_events_after_commit(tenant: Tenant, events):
    ticket = await new_ticket(tenant)
    await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"priority": "Critical"})
    error(
        await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"priority": "Low", "version": 1}),
        409,
        "CONFLICT",
    )
    mine = [e for e in events if e.workspace_id == tenant.workspace_id]
    assert [e.type for e in mine] == ["user.created", "ticket.created", "ticket.updated"]
    created, updated = mine[1], mine[2]
    listed = data(await tenant.get("/v1/tickets"))[0]
    assert set(created.payload) == SUMMARY_KEYS
    assert created.channels == ["tickets", f"ticket:{ticket['id']}"]
    assert created.actor == {"type": "agent", "id": tenant.agent_id}
    assert updated.payload["id"] == ticket["id"]
    assert updated.payload["changes"]["priority"] == ["Medium", "Critical"]
    assert updated.payload["ticket"] == listed


async def test_malformed_and_foreign_ticket_ids(tenant: Tenant, make_tenant):
    other = await make_tenant()
    foreign = await new_ticket(other)
    for ticket_id in (foreign["id"], "not-a-uuid", "x" * 500):
        error(await tenant.get(f"/v1/tickets/{ticket_id}"), 404, "NOT_FOUND")
        error(
            await tenant.patch(f"/v1/tickets/{ticket_id}", json={"priority": "Low"}),
            404,
            "NOT_FOUND",
        )
        error(await tenant.get(f"/v1/tickets/{ticket_id}/activities"), 404, "NOT_FOUND")


async def test_tags_follow_patches(tenant: Tenant):
    ticket = await new_ticket(tenant, tags=["alpha", "beta"])
    changed = data(
        await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"tags": ["Beta", "gamma"]})
    )
    assert changed["tags"] == ["beta", "gamma"]
    for tag, expected in (("alpha", []), ("beta", [ticket["id"]]), ("gamma", [ticket["id"]])):
        listed = data(await tenant.get("/v1/tickets", params={"tag": tag}))
        assert [t["id"] for t in listed] == expected


class Mailboxes:
    """A stand-in for the email domain's mailbox directory."""

    def __init__(self, workspace_id: str, mailbox_id: str) -> None:
        self.known = (workspace_id, mailbox_id)

    async def exists(self, session, *, workspace_id: str, mailbox_id: str) -> bool:
        return (workspace_id, mailbox_id) == self.known


async def test_email_lookups(tenant: Tenant, make_tenant, app_runtime: Runtime, monkeypatch):
    mailbox = "01900000-0000-7000-8000-00000000abcd"
    monkeypatch.setitem(app_runtime.services, MAILBOXES, Mailboxes(tenant.workspace_id, mailbox))
    ticket = await new_ticket(tenant, mailboxId=mailbox)
    assert ticket["mailboxId"] == mailbox
    other = await make_tenant()
    error(
        await other.post(
            "/v1/tickets",
            json={"subject": "s", "mailboxId": mailbox, "customer": {"email": "c@example.com"}},
        ),
        422,
        "VALIDATION_ERROR",
    )
    async with app_runtime.db.transaction() as session:
        await session.execute(
            update(Ticket).where(Ticket.id == ticket["id"]).values(conversation_id="conv-1")
        )
    async with app_runtime.db.transaction() as session:
        found = await service.ticket_by_number(
            session, workspace_id=tenant.workspace_id, number=ticket["number"]
        )
        assert found is not None and found.id == ticket["id"]
        assert (
            await service.ticket_by_number(
                session, workspace_id=other.workspace_id, number=ticket["number"]
            )
            is None
        )
        thread = await service.ticket_by_conversation(
            session,
            workspace_id=tenant.workspace_id,
            mailbox_id=mailbox,
            conversation_id="conv-1",
        )
        assert thread is not None and thread.id == ticket["id"]
        assert (
            await service.ticket_by_conversation(
                session,
                workspace_id=other.workspace_id,
                mailbox_id=mailbox,
                conversation_id="conv-1",
            )
            is None
        )
