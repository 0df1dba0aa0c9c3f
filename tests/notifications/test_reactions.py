"""Who is told what: assignment, new ticket in a team, customer reply, @mentions."""

from __future__ import annotations

from typing import Any

from enque.activity.service import Actor
from enque.comments.service import IncomingMessage, add_customer_message, add_customer_messages
from enque.core.events import Event
from enque.core.runtime import Runtime
from enque.notifications.hooks import notify_agents
from enque.tickets.service import update_ticket
from tests.notifications.support import admin, join_team, person
from tests.support.api import Tenant, data
from tests.support.helpdesk import add_team, new_ticket
from tests.support.statements import statements


async def test_assignment_tells_the_assignee_not_the_actor(tenant: Tenant, app_runtime: Runtime):
    jane = await person(app_runtime, tenant)
    ticket = await new_ticket(tenant, assigneeId=jane.agent_id, subject="Printer jam")
    items, meta = await jane.feed()
    assert meta["unreadCount"] == 1 and len(items) == 1
    note = items[0]
    assert note["event"] == "ticket.assigned" and note["ticketId"] == ticket["id"]
    assert note["isRead"] is False and note["readAt"] is None
    assert note["payload"]["ticket"] == {
        "id": ticket["id"],
        "number": ticket["number"],
        "subject": "Printer jam",
    }
    assert note["payload"]["actor"]["id"] == tenant.agent_id
    assert note["payload"]["actor"]["type"] == "agent"
    assert (await admin(tenant).feed())[0] == []


async def test_reassignment_and_self_assignment(tenant: Tenant, app_runtime: Runtime):
    jane = await person(app_runtime, tenant)
    bob = await person(app_runtime, tenant)
    ticket = await new_ticket(tenant)
    path = f"/v1/tickets/{ticket['id']}"
    data(await tenant.patch(path, json={"assigneeId": jane.agent_id}))
    data(await tenant.patch(path, json={"priority": "High"}))  # not an assignment
    assert [n["event"] for n in (await jane.feed())[0]] == ["ticket.assigned"]
    # bob takes it himself: nobody is told, jane is not told of losing it either
    data(await bob.request("PATCH", path, json={"assigneeId": bob.agent_id}))
    assert (await bob.feed())[0] == []
    assert len((await jane.feed())[0]) == 1
    # unassigning tells nobody
    data(await tenant.patch(path, json={"assigneeId": None}))
    assert (await bob.feed())[0] == []


async def test_new_ticket_in_my_team(tenant: Tenant, app_runtime: Runtime):
    team = await add_team(app_runtime, tenant)
    jane = await person(app_runtime, tenant)
    bob = await person(app_runtime, tenant)
    out = await person(app_runtime, tenant)
    await join_team(app_runtime, tenant, team, jane.agent_id, bob.agent_id, tenant.agent_id)
    ticket = await new_ticket(tenant, teamId=team, assigneeId=bob.agent_id)
    jane_items = (await jane.feed())[0]
    assert [(n["event"], n["ticketId"]) for n in jane_items] == [("ticket.created", ticket["id"])]
    assert jane_items[0]["payload"]["team"] == {"id": team}
    # the assignee is told once, of the assignment; the creator and outsiders not at all
    assert [n["event"] for n in (await bob.feed())[0]] == ["ticket.assigned"]
    assert (await admin(tenant).feed())[0] == []
    assert (await out.feed())[0] == []


async def test_customer_reply_tells_the_assignee(tenant: Tenant, app_runtime: Runtime):
    jane = await person(app_runtime, tenant)
    ticket = await new_ticket(tenant, assigneeId=jane.agent_id)
    await jane.request("POST", "/v1/notifications/read", json={"all": True})
    async with app_runtime.db.transaction() as session:
        await add_customer_message(
            session,
            workspace_id=tenant.workspace_id,
            message=IncomingMessage(
                ticket_id=ticket["id"],
                user_id=ticket["customer"]["id"],
                content="<p>Still   broken,\n please help</p>",
            ),
        )
    items, meta = await jane.feed(unread="true")
    assert meta["unreadCount"] == 1
    assert items[0]["event"] == "customer.replied"
    assert items[0]["payload"]["excerpt"] == "Still broken, please help"
    assert items[0]["payload"]["actor"] == {
        "type": "user",
        "id": ticket["customer"]["id"],
        "name": "Casey Customer",
    }
    # a public reply of an agent is not a customer reply
    data(await tenant.post(f"/v1/tickets/{ticket['id']}/reply", json={"content": "<p>ok</p>"}), 201)
    assert (await jane.feed(unread="true"))[1]["unreadCount"] == 1


async def test_unassigned_customer_reply_tells_nobody(tenant: Tenant, app_runtime: Runtime):
    ticket = await new_ticket(tenant)
    async with app_runtime.db.transaction() as session:
        await add_customer_message(
            session,
            workspace_id=tenant.workspace_id,
            message=IncomingMessage(
                ticket_id=ticket["id"], user_id=ticket["customer"]["id"], content="<p>hello?</p>"
            ),
        )
    assert (await admin(tenant).feed())[0] == []


async def test_mentions_in_a_note(tenant: Tenant, make_tenant, app_runtime: Runtime):
    named = await person(app_runtime, tenant)
    by_name = await person(app_runtime, tenant, name="Zoë Quartermain")
    by_email = await person(app_runtime, tenant)
    bystander = await person(app_runtime, tenant, name="Zoë")
    other = await make_tenant()
    stranger = await person(app_runtime, other)
    ticket = await new_ticket(tenant)
    content = (
        f"<p>@zoë quartermain and @{by_email.email} please look; "
        f"not {stranger.email} nor @{stranger.email}, me: @{tenant.email}</p>"
    )
    body = {"content": content, "mentions": [named.agent_id, tenant.agent_id]}
    note = data(await tenant.post(f"/v1/tickets/{ticket['id']}/notes", json=body), 201)
    for agent in (named, by_name, by_email):
        items = (await agent.feed())[0]
        assert [(n["event"], n["payload"]["commentId"]) for n in items] == [("mention", note["id"])]
        assert "please look" in items[0]["payload"]["excerpt"]
    # a shorter name that prefixes a longer one is not mentioned by it
    assert (await bystander.feed())[0] == []
    assert (await admin(tenant).feed())[0] == []
    assert (await person_feed(stranger)) == []


async def person_feed(agent) -> list:
    return (await agent.feed())[0]


async def test_a_note_without_mentions_tells_nobody(tenant: Tenant, app_runtime: Runtime):
    jane = await person(app_runtime, tenant)
    ticket = await new_ticket(tenant, assigneeId=jane.agent_id)
    await jane.request("POST", "/v1/notifications/read", json={"all": True})
    content = {"content": "<p>mail me at someone@example.com</p>"}
    data(await tenant.post(f"/v1/tickets/{ticket['id']}/notes", json=content), 201)
    assert (await jane.feed(unread="true"))[0] == []


async def test_notification_is_published_to_its_agent(
    tenant: Tenant, app_runtime: Runtime, events: list[Event]
):
    jane = await person(app_runtime, tenant)
    ticket = await new_ticket(tenant, assigneeId=jane.agent_id)
    published = [e for e in events if e.type == "notification"]
    assert len(published) == 1
    event = published[0]
    assert event.agent_id == jane.agent_id and event.channels == ["notifications"]
    assert event.workspace_id == tenant.workspace_id
    stored = (await jane.feed())[0][0]
    assert event.payload == stored
    assert event.wire()["payload"]["ticketId"] == ticket["id"]


async def test_automation_notice(tenant: Tenant, app_runtime: Runtime):
    jane = await person(app_runtime, tenant)
    ticket = await new_ticket(tenant)
    async with app_runtime.db.transaction() as session:
        await notify_agents(
            session,
            workspace_id=tenant.workspace_id,
            agent_ids=[jane.agent_id],
            ticket_id=ticket["id"],
            reason="automation:rule-1",
        )
    items = (await jane.feed())[0]
    assert [n["event"] for n in items] == ["automation"]
    assert items[0]["payload"]["actor"] == {
        "type": "automation",
        "id": "rule-1",
        "name": "Automation",
    }
    assert app_runtime.services["notify_agents"] is notify_agents


async def test_an_edited_note_tells_only_the_newly_mentioned(tenant: Tenant, app_runtime: Runtime):
    jane = await person(app_runtime, tenant)
    bob = await person(app_runtime, tenant)
    ticket = await new_ticket(tenant)
    first = {"content": f"<p>@{jane.email} look</p>"}
    note = data(await tenant.post(f"/v1/tickets/{ticket['id']}/notes", json=first), 201)
    edited = {"content": f"<p>@{jane.email} and @{bob.email} look</p>"}
    data(await tenant.patch(f"/v1/comments/{note['id']}", json=edited))
    data(await tenant.patch(f"/v1/comments/{note['id']}", json=edited))
    assert [n["event"] for n in await person_feed(jane)] == ["mention"]
    bob_items = await person_feed(bob)
    assert [(n["event"], n["payload"]["commentId"]) for n in bob_items] == [("mention", note["id"])]


async def test_customer_messages_of_one_commit_read_their_tickets_together(
    tenant: Tenant, app_runtime: Runtime
):
    """The assignees of a commit's customer messages are read once for all of them, and read
    again once something has committed in between (here another reaction assigns a ticket)."""
    quiet = [await new_ticket(tenant) for _ in range(6)]
    jane = await person(app_runtime, tenant)
    bob = await person(app_runtime, tenant)
    mine = await new_ticket(tenant, assigneeId=jane.agent_id)
    later = await new_ticket(tenant)
    await jane.request("POST", "/v1/notifications/read", json={"all": True})
    await bob.request("POST", "/v1/notifications/read", json={"all": True})

    async def messages(tickets: list[dict[str, Any]]) -> None:
        async with app_runtime.db.transaction() as session:
            await add_customer_messages(
                session,
                workspace_id=tenant.workspace_id,
                items=[
                    IncomingMessage(
                        ticket_id=t["id"], user_id=t["customer"]["id"], content="<p>hello?</p>"
                    )
                    for t in tickets
                ],
            )

    with statements(app_runtime) as seen:
        await messages(quiet)
    reads = [s for s in seen if s.startswith("SELECT tickets.id, tickets.assignee_id \nFROM")]
    assert 1 <= len(reads) <= 2, reads  # one per message before (6); a background job may commit
    assert (await admin(tenant).feed())[0] == []

    async def assign_later(event: Event) -> None:  # on the first message, after notifications
        if event.type == "comment.created" and event.payload["ticketId"] == mine["id"]:
            async with app_runtime.db.transaction() as session:
                await update_ticket(
                    session,
                    workspace_id=tenant.workspace_id,
                    actor=Actor("agent", tenant.agent_id),
                    ticket_id=later["id"],
                    changes={"assignee_id": bob.agent_id},
                )

    app_runtime.reactions.append(assign_later)
    try:
        await messages([mine, later])
    finally:
        app_runtime.reactions.remove(assign_later)
    assert [n["event"] for n in (await jane.feed(unread="true"))[0]] == ["customer.replied"]
    told = [(n["event"], n["ticketId"]) for n in (await bob.feed(unread="true"))[0]]
    assert sorted(told) == [("customer.replied", later["id"]), ("ticket.assigned", later["id"])]
