"""`GET /v1/realtime` against a running uvicorn server, with a real WebSocket client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from enque.core.events import Event
from enque.core.runtime import Runtime
from enque.realtime.hub import Hub
from tests.support.api import Tenant, data
from tests.support.helpdesk import add_agent, new_ticket
from tests.support.realtime import Socket


@pytest.fixture
def fast_auth(hub: Hub) -> Iterator[None]:
    before = hub.auth_timeout
    hub.auth_timeout = 0.5
    yield
    hub.auth_timeout = before


async def test_token_in_query_or_first_message(live_url: str, tenant: Tenant):
    by_query = await Socket.open(live_url, tenant.token)
    ready = await by_query.expect("ready")
    assert ready["payload"] == {"agentId": tenant.agent_id, "workspaceId": tenant.workspace_id}
    await by_query.close()

    by_message = await Socket.open(live_url)
    await by_message.send({"type": "auth", "token": tenant.token})
    assert (await by_message.expect("ready"))["payload"]["agentId"] == tenant.agent_id
    await by_message.close()


@pytest.mark.usefixtures("fast_auth")
async def test_no_or_bad_token_is_closed_4401(live_url: str, tenant: Tenant):
    silent = await Socket.open(live_url)
    assert (await silent.closed())[0] == 4401

    wrong_first = await Socket.open(live_url)
    await wrong_first.send({"type": "subscribe", "channel": "tickets"})
    assert (await wrong_first.closed())[0] == 4401

    forged = await Socket.open(live_url, tenant.token[:-4] + "AAAA")
    assert (await forged.closed())[0] == 4401

    bad_message = await Socket.open(live_url)
    await bad_message.send({"type": "auth", "token": "not-a-jwt"})
    code, seen = await bad_message.closed()
    assert code == 4401 and not any(m["type"] == "ready" for m in seen)


async def test_ticket_events_reach_subscribers(live_url: str, tenant: Tenant):
    sock = await Socket.ready(live_url, tenant.token, "tickets")
    ticket = await new_ticket(tenant)
    created = await sock.expect("ticket.created")
    assert created["payload"]["id"] == ticket["id"] and created["id"] and created["ts"]

    data(await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"priority": "High"}))
    updated = await sock.expect("ticket.updated")
    assert updated["payload"]["id"] == ticket["id"]
    assert updated["payload"]["changes"]["priority"][1] == "High"
    assert updated["payload"]["ticket"]["id"] == ticket["id"]

    data(await tenant.post(f"/v1/tickets/{ticket['id']}/notes", json={"content": "n1"}), 201)
    comment = await sock.expect("comment.created")
    assert comment["payload"]["ticketId"] == ticket["id"]
    assert comment["payload"]["comment"]["kind"] == "note"

    other = await new_ticket(tenant)
    data(
        await tenant.post(
            f"/v1/tickets/{ticket['id']}/merge", json={"sourceTicketIds": [other["id"]]}
        )
    )
    merged = await sock.expect("ticket.merged")
    assert merged["payload"] == {"id": other["id"], "intoId": ticket["id"]}

    assert (await tenant.delete(f"/v1/tickets/{ticket['id']}")).status_code == 204
    assert (await sock.expect("ticket.deleted"))["payload"] == {"id": ticket["id"]}
    await sock.close()


async def test_comment_delivery_event(live_url: str, tenant: Tenant, app_runtime: Runtime):
    from enque.comments.service import record_delivery

    ticket = await new_ticket(tenant)
    reply = data(
        await tenant.post(f"/v1/tickets/{ticket['id']}/reply", json={"content": "hi"}), 201
    )
    sock = await Socket.ready(live_url, tenant.token, f"ticket:{ticket['id']}")
    async with app_runtime.db.transaction() as session:
        await record_delivery(
            session, workspace_id=tenant.workspace_id, comment_id=reply["id"], delivery="sent"
        )
    event = await sock.expect("comment.delivery")
    assert event["payload"] == {
        "ticketId": ticket["id"],
        "commentId": reply["id"],
        "delivery": "sent",
    }
    await sock.close()


async def test_ticket_channel_carries_only_that_ticket(live_url: str, tenant: Tenant):
    watched, unwatched = await new_ticket(tenant), await new_ticket(tenant)
    sock = await Socket.ready(live_url, tenant.token, f"ticket:{watched['id']}")
    data(await tenant.patch(f"/v1/tickets/{unwatched['id']}", json={"priority": "Low"}))
    data(await tenant.patch(f"/v1/tickets/{watched['id']}", json={"priority": "High"}))
    first = await sock.expect("ticket.updated")
    assert first["payload"]["id"] == watched["id"]  # the earlier change was not sent

    await sock.send({"type": "unsubscribe", "channel": f"ticket:{watched['id']}"})
    await sock.expect("unsubscribed")
    await sock.send({"type": "subscribe", "channel": "tickets"})
    await sock.expect("subscribed")
    data(await tenant.patch(f"/v1/tickets/{unwatched['id']}", json={"priority": "High"}))
    assert (await sock.expect("ticket.updated"))["payload"]["id"] == unwatched["id"]
    await sock.close()


async def test_workspaces_never_meet(live_url: str, tenant: Tenant, make_tenant):
    stranger = await make_tenant()
    foreign = await new_ticket(tenant)
    theirs = await Socket.ready(live_url, stranger.token, "tickets")

    await theirs.send({"type": "subscribe", "channel": f"ticket:{foreign['id']}"})
    refused = await theirs.next()
    assert refused["type"] == "error" and refused["payload"]["code"] == "NOT_FOUND"
    await theirs.send({"type": "presence", "ticketId": foreign["id"], "state": "viewing"})
    assert (await theirs.next())["payload"]["code"] == "NOT_FOUND"

    data(await tenant.patch(f"/v1/tickets/{foreign['id']}", json={"priority": "High"}))
    own = await new_ticket(stranger)
    # events go out in order: had the other workspace's change been sent, it would come first
    assert (await theirs.next())["payload"]["id"] == own["id"]
    await theirs.close()


async def test_channels_and_messages_are_checked(live_url: str, tenant: Tenant):
    sock = await Socket.ready(live_url, tenant.token)
    await sock.send({"type": "subscribe", "channel": "customers"})
    assert (await sock.next())["payload"]["code"] == "NOT_FOUND"
    await sock.send({"type": "subscribe", "channel": "ticket:not-an-id"})
    assert (await sock.next())["payload"]["code"] == "NOT_FOUND"
    await sock.send({"type": "subscribe"})
    assert (await sock.next())["payload"]["code"] == "VALIDATION_ERROR"
    await sock.send({"type": "dance"})
    assert (await sock.next())["payload"]["code"] == "BAD_REQUEST"
    await sock.ws.send("{not json")
    assert (await sock.next())["payload"]["code"] == "BAD_REQUEST"
    await sock.send({"type": "subscribe", "payload": {"channel": "notifications"}})
    assert (await sock.next()) == {
        "type": "subscribed",
        "payload": {"channel": "notifications"},
        "ts": pytest.approx(0, abs=1e12),
    }
    await sock.send({"type": "ping"})
    assert (await sock.next())["type"] == "pong"
    await sock.ws.send("x" * (65 * 1024))
    assert (await sock.closed())[0] == 1009


async def test_notifications_only_to_their_agent(
    live_url: str, tenant: Tenant, app_runtime: Runtime
):
    colleague = await add_agent(app_runtime, tenant)
    mine = await Socket.ready(live_url, tenant.token, "notifications", "tickets")
    theirs = await Socket.ready(live_url, colleague.token, "notifications")
    for agent_id, text in ((colleague.agent_id, "for colleague"), (tenant.agent_id, "for me")):
        await app_runtime.broker.publish(
            Event(
                "notification",
                tenant.workspace_id,
                {"text": text},
                channels=["notifications"],
                agent_id=agent_id,
            )
        )
    assert (await mine.expect("notification"))["payload"] == {"text": "for me"}
    assert (await theirs.expect("notification"))["payload"] == {"text": "for colleague"}
    await mine.close()
    await theirs.close()


async def test_broadcast_channel_reaches_every_socket(
    live_url: str, tenant: Tenant, app_runtime: Runtime
):
    sock = await Socket.ready(live_url, tenant.token)  # no subscription at all
    await app_runtime.broker.publish(
        Event(
            "mailbox.status",
            tenant.workspace_id,
            {"mailboxId": "m1", "state": "error", "lastError": "login failed"},
            channels=["workspace"],
        )
    )
    event = await sock.expect("mailbox.status")
    assert event["payload"]["lastError"] == "login failed"
    await sock.close()


async def test_mailbox_status_from_its_service(
    live_url: str, tenant: Tenant, app_runtime: Runtime, events
):
    from enque.mailboxes.models import Mailbox
    from enque.mailboxes.service import set_status

    async with app_runtime.db.transaction() as session:
        mailbox = Mailbox(
            workspace_id=tenant.workspace_id,
            email="support@example.com",
            display_name="Support",
            kind="imap",
        )
        session.add(mailbox)
        await session.flush()
        mailbox_id = mailbox.id
    sock = await Socket.ready(live_url, tenant.token)
    for _ in range(2):  # the same state again is not announced again
        async with app_runtime.db.transaction() as session:
            await set_status(
                session,
                workspace_id=tenant.workspace_id,
                mailbox_id=mailbox_id,
                state="error",
                last_error="LOGIN failed",
            )
    async with app_runtime.db.transaction() as session:
        await set_status(
            session, workspace_id=tenant.workspace_id, mailbox_id=mailbox_id, state="active"
        )
    first, second = await sock.expect("mailbox.status"), await sock.expect("mailbox.status")
    assert first["payload"] == {
        "mailboxId": mailbox_id,
        "state": "error",
        "lastError": "LOGIN failed",
    }
    assert second["payload"] == {"mailboxId": mailbox_id, "state": "active", "lastError": None}
    assert [e.type for e in events if e.type == "mailbox.status"] == ["mailbox.status"] * 2
    await sock.close()
