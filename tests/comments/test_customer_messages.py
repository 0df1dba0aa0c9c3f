"""Customer messages from email ingest: threading onto tickets and the reopen rules."""

from typing import Any

from sqlalchemy import update

from enque.comments.service import (
    CustomerMessage,
    IncomingMessage,
    add_customer_message,
    add_customer_messages,
)
from enque.core.db import now
from enque.core.runtime import Runtime
from enque.tickets.models import Ticket
from tests.support.api import Tenant, data
from tests.support.helpdesk import new_ticket

DAY = 86400


async def deliver(
    runtime: Runtime, tenant: Tenant, ticket: dict[str, Any], **kwargs: Any
) -> CustomerMessage:
    async with runtime.db.transaction() as session:
        return await add_customer_message(
            session,
            workspace_id=tenant.workspace_id,
            message=IncomingMessage(
                ticket_id=ticket["id"],
                user_id=ticket["customer"]["id"],
                **{"content": "<p>Any update?</p>", **kwargs},
            ),
        )


async def closed_days_ago(runtime: Runtime, tenant: Tenant, days: int) -> dict[str, Any]:
    ticket = await new_ticket(tenant)
    data(await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"status": "Closed"}))
    async with runtime.db.transaction() as session:
        await session.execute(
            update(Ticket)
            .where(Ticket.id == ticket["id"])
            .values(closed_at=now() - days * DAY)
            .execution_options(synchronize_session=False)
        )
    return ticket


async def test_message_on_an_open_ticket(tenant: Tenant, app_runtime: Runtime, events):
    ticket = await new_ticket(tenant, status="In Progress")
    result = await deliver(
        app_runtime,
        tenant,
        ticket,
        cc=["Helper@Example.com"],
        message_id="<m1@mail.test>",
        in_reply_to="<r0@enque.test>",
        content="<p>Thanks <img src=x onerror=alert(1)></p>",
    )
    assert not result.new_ticket and result.comment is not None
    after = data(await tenant.get(f"/v1/tickets/{ticket['id']}"))
    assert after["status"] == "In Progress" and after["isRead"] is False
    assert after["lastCustomerReplyAt"] is not None and after["cc"] == ["Helper@example.com"]
    comment = data(await tenant.get(f"/v1/tickets/{ticket['id']}/comments"))[0]
    assert comment["kind"] == "customer" and comment["content"] == '<p>Thanks <img src="x"></p>'
    assert comment["author"] == {
        "type": "user",
        "id": ticket["customer"]["id"],
        "name": ticket["customer"]["name"],
    }
    assert comment["messageId"] == "<m1@mail.test>" and comment["inReplyTo"] == "<r0@enque.test>"
    created = [
        e for e in events if e.type == "comment.created" and e.workspace_id == tenant.workspace_id
    ]
    assert created[-1].actor == {"type": "user", "id": ticket["customer"]["id"]}
    # replies carry the CC of the thread
    reply = data(
        await tenant.post(f"/v1/tickets/{ticket['id']}/reply", json={"content": "ok"}), 201
    )
    assert reply["cc"] == ["Helper@example.com"]


async def test_waiting_on_customer_reopens(tenant: Tenant, app_runtime: Runtime):
    ticket = await new_ticket(tenant, status="With User")
    await deliver(app_runtime, tenant, ticket)
    assert data(await tenant.get(f"/v1/tickets/{ticket['id']}"))["status"] == "Open"


async def test_closed_within_window_reopens(tenant: Tenant, app_runtime: Runtime):
    ticket = await closed_days_ago(app_runtime, tenant, 29)
    result = await deliver(app_runtime, tenant, ticket)
    assert result.ticket.id == ticket["id"] and not result.new_ticket
    after = data(await tenant.get(f"/v1/tickets/{ticket['id']}"))
    assert after["status"] == "Open" and after["closedAt"] is None
    assert after["resolvedAt"] is not None


async def test_closed_after_window_opens_a_linked_ticket(tenant: Tenant, app_runtime: Runtime):
    ticket = await closed_days_ago(app_runtime, tenant, 31)
    result = await deliver(
        app_runtime, tenant, ticket, subject="Re: it broke again", content="<p>It broke again</p>"
    )
    assert result.new_ticket and result.comment is None and result.ticket.id != ticket["id"]
    fresh = data(await tenant.get(f"/v1/tickets/{result.ticket.id}"))
    assert fresh["linkedTicketId"] == ticket["id"] and fresh["status"] == "Unread"
    assert fresh["subject"] == "Re: it broke again" and fresh["body"]["text"] == "It broke again"
    assert fresh["customer"]["id"] == ticket["customer"]["id"] and fresh["isRead"] is False
    assert fresh["lastCustomerReplyAt"] is not None
    old = data(await tenant.get(f"/v1/tickets/{ticket['id']}"))
    assert old["status"] == "Closed" and old["counts"]["comments"] == 0


async def test_auto_reply_changes_nothing(tenant: Tenant, app_runtime: Runtime):
    ticket = await closed_days_ago(app_runtime, tenant, 1)
    result = await deliver(
        app_runtime, tenant, ticket, auto_reply=True, content="I am out of office"
    )
    assert result.comment is not None and result.comment.kind == "system"
    after = data(await tenant.get(f"/v1/tickets/{ticket['id']}"))
    assert after["status"] == "Closed" and after["lastCustomerReplyAt"] is None


async def test_messages_together_end_as_one_at_a_time(tenant: Tenant, app_runtime: Runtime, events):
    """`add_customer_messages`: a message past the reopen window, a reopening one, an
    auto-reply and another message to the same ticket, in one transaction, end as the same
    calls one by one (tickets, comments, statuses, events in order)."""

    async def messages() -> tuple[list[IncomingMessage], list[str]]:
        expired = await closed_days_ago(app_runtime, tenant, 31)
        recent = await closed_days_ago(app_runtime, tenant, 1)
        user = recent["customer"]["id"]
        items = [
            IncomingMessage(expired["id"], expired["customer"]["id"], "<p>Still broken</p>"),
            IncomingMessage(recent["id"], user, "<p>Not fixed</p>", cc=["Boss@Example.com"]),
            IncomingMessage(recent["id"], user, "<p>Away</p>", auto_reply=True),
            IncomingMessage(recent["id"], user, "<p>Hello?</p>"),
        ]
        return items, [expired["id"], recent["id"]]

    def outcome(results: list[CustomerMessage], ids: list[str]) -> list[Any]:
        return [
            (r.new_ticket, r.ticket.linked_ticket_id == ids[0], r.ticket.status, r.ticket.cc)
            for r in results
        ]

    def kinds(ids: list[str], results: list[CustomerMessage]) -> list[str]:
        mine = {*ids, *(r.ticket.id for r in results)}
        return [e.type for e in events if e.payload.get("ticketId", e.payload.get("id")) in mine]

    single_items, single_ids = await messages()
    single = []
    for item in single_items:
        async with app_runtime.db.transaction() as session:
            single.append(
                await add_customer_messages(session, workspace_id=tenant.workspace_id, items=[item])
            )
    one_by_one = [result for [result] in single]
    items, ids = await messages()
    async with app_runtime.db.transaction() as session:
        together = await add_customer_messages(
            session, workspace_id=tenant.workspace_id, items=items
        )
    assert outcome(together, ids) == outcome(one_by_one, single_ids)
    assert outcome(together, ids)[0][:2] == (True, True)
    assert [r.comment.kind for r in together[1:] if r.comment] == ["customer", "system", "customer"]
    assert data(await tenant.get(f"/v1/tickets/{ids[1]}"))["status"] == "Open"
    assert kinds(ids, together) == kinds(single_ids, one_by_one)
    assert kinds(ids, together)[-7:] == ["ticket.created"] + 3 * [
        "ticket.updated",
        "comment.created",
    ]
