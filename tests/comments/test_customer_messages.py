"""Customer messages from email ingest: threading onto tickets and the reopen rules."""

from typing import Any

from sqlalchemy import update

from enque.comments.service import CustomerMessage, add_customer_message
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
            ticket_id=ticket["id"],
            user_id=ticket["customer"]["id"],
            **{"content": "<p>Any update?</p>", **kwargs},
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
