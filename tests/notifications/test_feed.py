"""The in-app feed: keyset pages, unread count, read marks, settings; each agent sees only
their own, in their own workspace."""

from __future__ import annotations

from sqlalchemy import func, select, update

from enque.agents.models import AgentWorkspace
from enque.core.runtime import Runtime
from enque.notifications.models import Notification
from tests.notifications.support import Person, person
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import new_ticket

EVENTS = [
    "ticket.assigned",
    "ticket.created",
    "customer.replied",
    "mention",
    "automation",
    "sla.warning",
    "sla.breached",
]


async def assigned(tenant: Tenant, agent: Person, count: int) -> list[str]:
    return [(await new_ticket(tenant, assigneeId=agent.agent_id))["id"] for _ in range(count)]


async def test_pages_are_newest_first_without_gaps(tenant: Tenant, app_runtime: Runtime):
    jane = await person(app_runtime, tenant)
    ticket_ids = await assigned(tenant, jane, 5)
    seen: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        items, meta = await jane.feed(**params)
        assert meta["unreadCount"] == (5 if len(seen) < 2 else 6) and meta["limit"] == 2
        seen.extend(items)
        cursor = meta["nextCursor"]
        if cursor is None:
            break
        # a notification arriving between pages does not shift the next page
        if len(seen) == 2:
            await assigned(tenant, jane, 1)
    assert [n["ticketId"] for n in seen] == ticket_ids[::-1]
    assert len({n["id"] for n in seen}) == 5
    items, meta = await jane.feed(includeTotal="true")
    assert meta["total"] == 6 and meta["unreadCount"] == 6


async def test_mark_read_and_mark_all_read(tenant: Tenant, app_runtime: Runtime):
    jane = await person(app_runtime, tenant)
    await assigned(tenant, jane, 3)
    items, _ = await jane.feed()
    first = items[0]["id"]
    read = data(await jane.request("POST", "/v1/notifications/read", json={"ids": [first]}))
    assert read == {"updated": 1, "unreadCount": 2}
    again = data(await jane.request("POST", "/v1/notifications/read", json={"ids": [first]}))
    assert again == {"updated": 0, "unreadCount": 2}
    items, _ = await jane.feed()
    marked = next(n for n in items if n["id"] == first)
    assert marked["isRead"] is True and marked["readAt"] is not None
    unread, _ = await jane.feed(unread="true")
    assert first not in {n["id"] for n in unread} and len(unread) == 2
    done = data(await jane.request("POST", "/v1/notifications/read", json={"all": True}))
    assert done == {"updated": 2, "unreadCount": 0}
    assert (await jane.feed(unread="true"))[0] == []


async def test_read_needs_ids_or_all(tenant: Tenant):
    error(await tenant.post("/v1/notifications/read", json={}), 422, "VALIDATION_ERROR")
    error(await tenant.post("/v1/notifications/read", json={"x": 1}), 422, "VALIDATION_ERROR")


async def test_feeds_are_private_and_per_workspace(
    tenant: Tenant, make_tenant, app_runtime: Runtime
):
    jane = await person(app_runtime, tenant)
    bob = await person(app_runtime, tenant)
    other = await make_tenant()
    eve = await person(app_runtime, other)
    await assigned(tenant, jane, 2)
    await assigned(other, eve, 1)
    jane_ids = [n["id"] for n in (await jane.feed())[0]]
    # neither a colleague nor another workspace sees or marks jane's notifications
    assert (await bob.feed())[0] == []
    assert [n["ticketId"] for n in (await eve.feed())[0]] != []
    assert not set(jane_ids) & {n["id"] for n in (await eve.feed())[0]}
    for who in (bob, eve):
        body = {"ids": jane_ids}
        assert data(await who.request("POST", "/v1/notifications/read", json=body))["updated"] == 0
        data(await who.request("POST", "/v1/notifications/read", json={"all": True}))
    assert (await jane.feed())[1]["unreadCount"] == 2
    # the admin of the other workspace neither
    assert (await person_feed_of(other)) == []


async def person_feed_of(tenant: Tenant) -> list:
    return data(await tenant.get("/v1/notifications"))  # type: ignore[no-any-return]


async def test_settings_defaults_and_changes(tenant: Tenant, make_tenant, app_runtime: Runtime):
    jane = await person(app_runtime, tenant)
    defaults = data(await jane.request("GET", "/v1/notifications/settings"))
    assert [s["event"] for s in defaults] == EVENTS
    by_event = {s["event"]: s for s in defaults}
    assert by_event["ticket.assigned"] == {
        "event": "ticket.assigned",
        "enabled": True,
        "channels": ["in_app"],
    }
    assert by_event["automation"]["channels"] == ["in_app", "email"]
    assert by_event["sla.warning"]["channels"] == ["in_app"]
    assert by_event["sla.breached"]["channels"] == ["in_app", "email"]
    changed = await jane.settings(
        {"event": "mention", "channels": ["email", "in_app"]},
        {"event": "ticket.created", "enabled": False},
    )
    by_event = {s["event"]: s for s in changed}
    assert by_event["mention"] == {
        "event": "mention",
        "enabled": True,
        "channels": ["in_app", "email"],
    }
    assert by_event["ticket.created"]["enabled"] is False
    assert by_event["ticket.created"]["channels"] == ["in_app"]
    assert by_event["ticket.assigned"]["channels"] == ["in_app"]
    # a later change keeps what it does not name
    again = {s["event"]: s for s in await jane.settings({"event": "mention", "enabled": False})}
    assert again["mention"] == {
        "event": "mention",
        "enabled": False,
        "channels": ["in_app", "email"],
    }
    assert data(await jane.request("GET", "/v1/notifications/settings")) == list(again.values())
    # nobody else's settings moved
    assert data(await tenant.get("/v1/notifications/settings")) == defaults
    other = await make_tenant()
    assert data(await other.get("/v1/notifications/settings")) == defaults


async def test_settings_validation(tenant: Tenant):
    for body in (
        {"settings": [{"event": "ticket.deleted", "enabled": False}]},
        {"settings": [{"event": "mention", "channels": ["sms"]}]},
        {"settings": []},
        {"mention": True},
    ):
        error(await tenant.patch("/v1/notifications/settings", json=body), 422, "VALIDATION_ERROR")


async def test_disabled_event_is_not_told(tenant: Tenant, app_runtime: Runtime):
    jane = await person(app_runtime, tenant)
    await jane.settings({"event": "ticket.assigned", "enabled": False})
    await assigned(tenant, jane, 1)
    assert (await jane.feed())[0] == []
    await jane.settings({"event": "ticket.assigned", "enabled": True, "channels": []})
    await assigned(tenant, jane, 1)
    assert (await jane.feed())[0] == []
    await jane.settings({"event": "ticket.assigned", "channels": ["in_app"]})
    await assigned(tenant, jane, 1)
    assert len((await jane.feed())[0]) == 1


async def test_email_only_stays_out_of_the_feed(tenant: Tenant, app_runtime: Runtime, events):
    jane = await person(app_runtime, tenant)
    await jane.settings({"event": "ticket.assigned", "channels": ["email"]})
    await assigned(tenant, jane, 1)
    items, meta = await jane.feed()
    assert items == [] and meta["unreadCount"] == 0
    assert not [e for e in events if e.type == "notification"]


async def test_inactive_agents_are_not_told(tenant: Tenant, app_runtime: Runtime):
    jane = await person(app_runtime, tenant)
    ticket = await new_ticket(tenant)
    async with app_runtime.db.transaction() as session:
        await session.execute(
            update(AgentWorkspace)
            .where(AgentWorkspace.agent_id == jane.agent_id)
            .values(is_active=False)
        )
    body = {"content": "<p>see</p>", "mentions": []}
    data(await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"assigneeId": None}))
    data(await tenant.post(f"/v1/tickets/{ticket['id']}/notes", json=body), 201)
    text = {"content": f"<p>@{jane.email} see</p>"}
    data(await tenant.post(f"/v1/tickets/{ticket['id']}/notes", json=text), 201)
    async with app_runtime.db.session(write=False) as session:
        count = await session.scalar(
            select(func.count()).where(Notification.agent_id == jane.agent_id)
        )
    assert count == 0
