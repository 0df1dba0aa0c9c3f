from enque.comments.service import record_delivery
from enque.core.runtime import Runtime
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import add_agent, new_ticket

COMMENT_KEYS = {
    "id",
    "ticketId",
    "kind",
    "author",
    "content",
    "text",
    "to",
    "cc",
    "bcc",
    "mentions",
    "messageId",
    "inReplyTo",
    "delivery",
    "deliveryError",
    "deliveryAttempts",
    "attachments",
    "createdAt",
    "updatedAt",
}


async def test_reply_is_stored_pending_and_addressed(tenant: Tenant, events):
    ticket = await new_ticket(tenant, status="Unread", customer={"email": "cus@example.com"})
    path = f"/v1/tickets/{ticket['id']}"
    reply = data(
        await tenant.post(
            f"{path}/reply",
            json={
                "content": '<p>Hello <a href="javascript:alert(1)">there</a></p>'
                "<script>x()</script>",
                "cc": ["boss@example.com"],
                "to": ["CUS@example.com", "other@example.com"],
            },
        ),
        201,
    )
    assert set(reply) == COMMENT_KEYS
    assert reply["kind"] == "reply" and reply["delivery"] == "pending"
    assert reply["content"] == '<p>Hello <a rel="noopener noreferrer nofollow">there</a></p>'
    assert reply["text"] == "Hello there"
    assert reply["to"] == ["cus@example.com", "other@example.com"]
    assert reply["cc"] == ["boss@example.com"] and reply["bcc"] == []
    assert reply["author"] == {
        "type": "agent",
        "id": tenant.agent_id,
        "name": reply["author"]["name"],
    }
    assert reply["attachments"] == [] and reply["messageId"] is None

    after = data(await tenant.get(path))
    assert after["status"] == "Open" and after["isRead"] is True
    assert after["firstResponseAt"] == after["lastAgentReplyAt"] == reply["createdAt"]
    created = [
        e for e in events if e.type == "comment.created" and e.workspace_id == tenant.workspace_id
    ]
    assert created[0].payload == {"ticketId": ticket["id"], "comment": reply}
    assert created[0].channels == ["tickets", f"ticket:{ticket['id']}"]

    second = data(
        await tenant.post(f"{path}/reply", json={"content": "more", "status": "With User"}), 201
    )
    later = data(await tenant.get(path))
    assert later["status"] == "With User" and later["firstResponseAt"] == after["firstResponseAt"]
    assert later["lastAgentReplyAt"] == second["createdAt"]
    error(await tenant.post(f"{path}/reply", json={"content": "<p> </p>"}), 422, "VALIDATION_ERROR")
    error(
        await tenant.post(f"{path}/reply", json={"content": "x", "attachmentIds": ["a"]}),
        422,
        "VALIDATION_ERROR",
    )


async def test_delivery_outcome(tenant: Tenant, app_runtime: Runtime, events):
    ticket = await new_ticket(tenant)
    reply = data(
        await tenant.post(f"/v1/tickets/{ticket['id']}/reply", json={"content": "hi"}), 201
    )
    async with app_runtime.db.transaction() as session:
        await record_delivery(
            session,
            workspace_id=tenant.workspace_id,
            comment_id=reply["id"],
            delivery="failed",
            error="451 try later",
        )
    async with app_runtime.db.transaction() as session:
        await record_delivery(
            session,
            workspace_id=tenant.workspace_id,
            comment_id=reply["id"],
            delivery="sent",
            message_id="<abc@enque.test>",
        )
    stored = data(await tenant.get(f"/v1/tickets/{ticket['id']}/comments"))[0]
    assert stored["delivery"] == "sent" and stored["deliveryAttempts"] == 2
    assert stored["messageId"] == "<abc@enque.test>" and stored["deliveryError"] is None
    outcomes = [
        e.payload["delivery"]
        for e in events
        if e.type == "comment.delivery" and e.workspace_id == tenant.workspace_id
    ]
    assert outcomes == ["failed", "sent"]


async def test_notes_and_mentions(tenant: Tenant, make_tenant, app_runtime: Runtime):
    colleague = await add_agent(app_runtime, tenant)
    other = await make_tenant()
    ticket = await new_ticket(tenant)
    path = f"/v1/tickets/{ticket['id']}/notes"
    note = data(
        await tenant.post(
            path, json={"content": "ask @colleague", "mentions": [colleague.agent_id]}
        ),
        201,
    )
    assert note["kind"] == "note" and note["delivery"] is None and note["to"] == []
    assert note["mentions"] == [colleague.agent_id]
    err = error(
        await tenant.post(path, json={"content": "x", "mentions": [other.agent_id]}),
        422,
        "VALIDATION_ERROR",
    )
    assert err["details"][0]["path"] == "mentions"
    detail = data(await tenant.get(f"/v1/tickets/{ticket['id']}"))
    assert detail["firstResponseAt"] is None and detail["counts"]["notes"] == 1


async def test_only_own_notes_change(tenant: Tenant, make_tenant, app_runtime: Runtime):
    colleague = await add_agent(app_runtime, tenant)
    ticket = await new_ticket(tenant)
    base = f"/v1/tickets/{ticket['id']}"
    mine = data(await tenant.post(f"{base}/notes", json={"content": "draft"}), 201)
    theirs = data(
        await tenant.post(f"{base}/notes", json={"content": "theirs"}, token=colleague.token), 201
    )
    reply = data(await tenant.post(f"{base}/reply", json={"content": "sent"}), 201)

    edited = data(
        await tenant.patch(
            f"/v1/comments/{mine['id']}", json={"content": "<b>final</b><img src=x onerror=y()>"}
        )
    )
    assert edited["content"] == '<b>final</b><img src="x">' and edited["text"] == "final"
    error(
        await tenant.patch(f"/v1/comments/{theirs['id']}", json={"content": "x"}), 403, "FORBIDDEN"
    )
    error(
        await tenant.patch(f"/v1/comments/{reply['id']}", json={"content": "x"}), 403, "FORBIDDEN"
    )
    error(await tenant.delete(f"/v1/comments/{reply['id']}"), 403, "FORBIDDEN")
    error(await tenant.delete(f"/v1/comments/{theirs['id']}"), 403, "FORBIDDEN")
    assert (await tenant.delete(f"/v1/comments/{mine['id']}")).status_code == 204
    error(await tenant.patch(f"/v1/comments/{mine['id']}", json={"content": "x"}), 404, "NOT_FOUND")
    other = await make_tenant()
    error(await other.delete(f"/v1/comments/{theirs['id']}"), 404, "NOT_FOUND")
    thread = data(await tenant.get(f"{base}/comments"))
    assert [c["id"] for c in thread] == [theirs["id"], reply["id"]]
    verbs = [a["verb"] for a in data(await tenant.get(f"{base}/activities"))]
    assert verbs.count("comment.created") == 3
    assert "comment.updated" in verbs and "comment.deleted" in verbs


async def test_thread_pages_oldest_first(tenant: Tenant, make_tenant):
    ticket = await new_ticket(tenant)
    base = f"/v1/tickets/{ticket['id']}"
    made = [
        data(await tenant.post(f"{base}/notes", json={"content": f"note {i}"}), 201)["id"]
        for i in range(5)
    ]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = (await tenant.get(f"{base}/comments", params=params)).json()
        seen += [c["id"] for c in body["data"]]
        cursor = body["meta"]["nextCursor"]
        if cursor is None:
            break
    assert seen == made
    other = await make_tenant()
    error(await other.get(f"{base}/comments"), 404, "NOT_FOUND")
    error(await other.post(f"{base}/reply", json={"content": "x"}), 404, "NOT_FOUND")


async def test_notify_customer_sends_the_body_as_a_reply(tenant: Tenant):
    ticket = data(
        await tenant.post(
            "/v1/tickets",
            json={
                "subject": "Your order",
                "body": "<p>It shipped</p>",
                "notifyCustomer": True,
                "customer": {"email": "buyer@example.com"},
            },
        ),
        201,
    )
    thread = data(await tenant.get(f"/v1/tickets/{ticket['id']}/comments"))
    assert [(c["kind"], c["delivery"], c["to"], c["text"]) for c in thread] == [
        ("reply", "pending", ["buyer@example.com"], "It shipped")
    ]
    error(
        await tenant.post(
            "/v1/tickets",
            json={
                "subject": "Empty",
                "notifyCustomer": True,
                "customer": {"email": "b@example.com"},
            },
        ),
        422,
        "VALIDATION_ERROR",
    )
    assert len(data(await tenant.get("/v1/tickets"))) == 1


async def test_changes_to_closed_merged_or_deleted_tickets(tenant: Tenant):
    target, source = await new_ticket(tenant), await new_ticket(tenant)
    data(
        await tenant.post(
            f"/v1/tickets/{target['id']}/merge", json={"sourceTicketIds": [source["id"]]}
        )
    )
    error(
        await tenant.post(f"/v1/tickets/{source['id']}/reply", json={"content": "x"}),
        409,
        "CONFLICT",
    )
    error(
        await tenant.post(f"/v1/tickets/{source['id']}/notes", json={"content": "x"}),
        409,
        "CONFLICT",
    )
    assert (await tenant.delete(f"/v1/tickets/{target['id']}")).status_code == 204
    error(
        await tenant.post(f"/v1/tickets/{target['id']}/reply", json={"content": "x"}),
        409,
        "CONFLICT",
    )
