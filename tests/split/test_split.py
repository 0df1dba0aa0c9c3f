"""Split: chosen comments move to a new linked ticket; both activity logs record it."""

from __future__ import annotations

from typing import Any

from tests.support.api import Tenant, data, error
from tests.support.helpdesk import new_ticket


async def thread(tenant: Tenant, ticket_id: str) -> list[dict[str, Any]]:
    return data(await tenant.get(f"/v1/tickets/{ticket_id}/comments"))  # type: ignore[no-any-return]


async def test_split_moves_comments_into_a_linked_ticket(
    tenant: Tenant, events: list[Any], make_tenant: Any
) -> None:
    source = await new_ticket(tenant, priority="High", subject="Two problems")
    keep = data(
        await tenant.post(
            f"/v1/tickets/{source['id']}/notes", json={"content": "<p>about the printer</p>"}
        ),
        201,
    )
    move = data(
        await tenant.post(
            f"/v1/tickets/{source['id']}/notes", json={"content": "<p>about the VPN</p>"}
        ),
        201,
    )
    move2 = data(
        await tenant.post(
            f"/v1/tickets/{source['id']}/notes", json={"content": "<p>VPN again</p>"}
        ),
        201,
    )
    response = await tenant.post(
        f"/v1/tickets/{source['id']}/split",
        json={"commentIds": [move["id"], move2["id"], move["id"]]},
    )
    new = data(response, 201)
    assert new["id"] != source["id"] and new["number"] > source["number"]
    assert new["subject"] == "Two problems" and new["priority"] == "High"
    assert new["linkedTicketId"] == source["id"]
    moved = [c for c in await thread(tenant, new["id"]) if c["kind"] != "system"]
    assert [c["id"] for c in moved] == [move["id"], move2["id"]]
    left = await thread(tenant, source["id"])
    assert keep["id"] in [c["id"] for c in left] and move["id"] not in [c["id"] for c in left]
    assert any(c["kind"] == "system" and f"#{new['number']}" in c["text"] for c in left)
    split_events = [e for e in events if e.type == "ticket.split"]
    assert [e.payload for e in split_events] == [
        {"id": source["id"], "newId": new["id"], "commentIds": [move["id"], move2["id"]]}
    ]
    verbs = [a["verb"] for a in data(await tenant.get(f"/v1/tickets/{source['id']}/activities"))]
    assert "ticket.split" in verbs
    new_verbs = [a["verb"] for a in data(await tenant.get(f"/v1/tickets/{new['id']}/activities"))]
    assert "ticket.split_from" in new_verbs
    # a comment of another ticket, a system line, or another workspace's ticket
    other = await new_ticket(tenant)
    other_note = data(
        await tenant.post(f"/v1/tickets/{other['id']}/notes", json={"content": "<p>x</p>"}), 201
    )
    failure = error(
        await tenant.post(
            f"/v1/tickets/{source['id']}/split", json={"commentIds": [keep["id"], other_note["id"]]}
        ),
        422,
        "VALIDATION_ERROR",
    )
    assert failure["details"] == [
        {"path": "commentIds.1", "message": "no such movable comment on this ticket"}
    ]
    system = next(c for c in left if c["kind"] == "system")
    error(
        await tenant.post(f"/v1/tickets/{source['id']}/split", json={"commentIds": [system["id"]]}),
        422,
        "VALIDATION_ERROR",
    )
    stranger = await make_tenant()
    error(
        await stranger.post(f"/v1/tickets/{source['id']}/split", json={"commentIds": [keep["id"]]}),
        404,
        "NOT_FOUND",
    )
