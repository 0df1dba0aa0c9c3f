from enque.comments.service import IncomingMessage, add_customer_message
from enque.core.runtime import Runtime
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import new_ticket


async def merge(tenant: Tenant, target: str, *sources: str):
    return await tenant.post(f"/v1/tickets/{target}/merge", json={"sourceTicketIds": list(sources)})


async def test_merge_moves_the_thread(tenant: Tenant, events):
    target = await new_ticket(tenant, subject="Email broken")
    source = await new_ticket(tenant, subject="Outlook crash", body="<p>Outlook crashes</p>")
    data(await tenant.post(f"/v1/tickets/{source['id']}/notes", json={"content": "seen it"}), 201)
    data(await tenant.post(f"/v1/tickets/{target['id']}/reply", json={"content": "on it"}), 201)

    merged = data(await merge(tenant, target["id"], source["id"]))
    assert merged["id"] == target["id"]
    assert merged["counts"]["notes"] == 1 and merged["counts"]["customerMessages"] == 1
    thread = data(await tenant.get(f"/v1/tickets/{target['id']}/comments"))
    kinds = [c["kind"] for c in thread]
    assert sorted(kinds) == ["customer", "note", "reply", "system"]
    first_message = next(c for c in thread if c["kind"] == "customer")
    assert first_message["text"] == "Outlook crashes"
    assert first_message["createdAt"] == source["createdAt"]
    assert first_message["author"]["id"] == source["customer"]["id"]
    assert data(await tenant.get(f"/v1/tickets/{source['id']}/comments")) == []

    gone = data(await tenant.get(f"/v1/tickets/{source['id']}"))
    assert gone["mergedIntoTicketId"] == target["id"] and gone["mergedAt"] is not None
    assert gone["status"] == "Closed"
    verbs = [a["verb"] for a in data(await tenant.get(f"/v1/tickets/{source['id']}/activities"))]
    assert "ticket.merged" in verbs
    verbs = [a["verb"] for a in data(await tenant.get(f"/v1/tickets/{target['id']}/activities"))]
    assert "ticket.merge_received" in verbs
    merged_events = [
        e for e in events if e.type == "ticket.merged" and e.workspace_id == tenant.workspace_id
    ]
    assert [e.payload for e in merged_events] == [{"id": source["id"], "intoId": target["id"]}]

    # idempotent: the same merge again changes nothing
    before = data(await tenant.get(f"/v1/tickets/{target['id']}"))
    again = data(await merge(tenant, target["id"], source["id"]))
    assert again["version"] == before["version"]
    assert len(data(await tenant.get(f"/v1/tickets/{target['id']}/comments"))) == 4


async def test_merge_conflicts(tenant: Tenant, make_tenant):
    a, b, c = [await new_ticket(tenant) for _ in range(3)]
    error(await merge(tenant, a["id"], a["id"]), 409, "CONFLICT")
    data(await merge(tenant, a["id"], b["id"]))
    error(await merge(tenant, b["id"], c["id"]), 409, "CONFLICT")  # into a merged ticket
    error(await merge(tenant, b["id"], a["id"]), 409, "CONFLICT")  # into its own merged ticket
    error(await merge(tenant, c["id"], b["id"]), 409, "CONFLICT")  # already merged elsewhere
    other = await make_tenant()
    foreign = await new_ticket(other)
    error(await merge(tenant, a["id"], foreign["id"]), 404, "NOT_FOUND")
    error(await merge(tenant, foreign["id"], a["id"]), 404, "NOT_FOUND")
    assert data(await other.get(f"/v1/tickets/{foreign['id']}"))["mergedIntoTicketId"] is None
    assert (await tenant.delete(f"/v1/tickets/{c['id']}")).status_code == 204
    error(await merge(tenant, a["id"], c["id"]), 409, "CONFLICT")


async def test_merging_a_ticket_brings_its_merged_tickets(tenant: Tenant, app_runtime: Runtime):
    first, middle, last = [await new_ticket(tenant) for _ in range(3)]
    data(await merge(tenant, middle["id"], first["id"]))
    data(await merge(tenant, last["id"], middle["id"]))
    assert data(await tenant.get(f"/v1/tickets/{first['id']}"))["mergedIntoTicketId"] == last["id"]
    # a customer writing to a merged ticket reaches the one it was merged into
    async with app_runtime.db.transaction() as session:
        result = await add_customer_message(
            session,
            workspace_id=tenant.workspace_id,
            message=IncomingMessage(
                ticket_id=first["id"], user_id=first["customer"]["id"], content="any news?"
            ),
        )
    assert result.ticket.id == last["id"] and not result.new_ticket
