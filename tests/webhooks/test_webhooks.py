"""Webhooks: signed deliveries to a real receiver, retries with backoff, the delivery log,
automatic disable, and the private-address guard (after DNS resolution)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from enque.core.runtime import Runtime
from enque.webhooks import delivery
from enque.webhooks.delivery import BACKOFF
from enque.webhooks.hooks import sender_of
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import new_ticket
from tests.webhooks.receiver import Receiver, serve


@pytest.fixture
def allow_local(app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test configuration lets webhooks reach the receiver on 127.0.0.1."""
    monkeypatch.setattr(app_runtime.settings, "webhook_allowed_hosts", "127.0.0.1")


@pytest.fixture
async def receiver(allow_local: None) -> AsyncIterator[Receiver]:
    async with serve() as running:
        yield running


async def subscribe(tenant: Tenant, url: str, events: list[str], **more: Any) -> dict[str, Any]:
    body = {"url": url, "events": events, **more}
    return data(await tenant.post("/v1/webhooks", json=body), 201)  # type: ignore[no-any-return]


async def deliveries(tenant: Tenant, webhook_id: str) -> list[dict[str, Any]]:
    return data(await tenant.get(f"/v1/webhooks/{webhook_id}/deliveries"))  # type: ignore[no-any-return]


def verify(secret: str, header: str, body: bytes) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(","))
    mac = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), parts["v1"])


async def test_a_committed_event_arrives_signed(
    tenant: Tenant, receiver: Receiver, app_runtime: Runtime
) -> None:
    hook = await subscribe(tenant, receiver.url(), ["ticket.created"])
    assert hook["secret"].startswith("whsec_") and hook["isActive"] is True
    assert "secret" not in data(await tenant.get(f"/v1/webhooks/{hook['id']}"))
    ticket = await new_ticket(tenant)
    await sender_of(app_runtime).idle()
    [got] = receiver.received
    assert got.path == "/hook" and got.headers["content-type"] == "application/json"
    assert verify(hook["secret"], got.headers["enque-signature"], got.body)
    assert not verify("whsec_wrong", got.headers["enque-signature"], got.body)
    body = orjson.loads(got.body)
    assert body["type"] == "ticket.created" and body["workspaceId"] == tenant.workspace_id
    assert body["payload"]["id"] == ticket["id"]
    assert got.headers["enque-event"] == "ticket.created"
    assert got.headers["enque-webhook"] == hook["id"]
    [logged] = await deliveries(tenant, hook["id"])
    assert logged["id"] == got.headers["enque-delivery"] and logged["eventId"] == body["id"]
    assert (logged["status"], logged["attempts"], logged["statusCode"]) == ("succeeded", 1, 200)
    assert logged["responseExcerpt"] == "answer 200" and logged["deliveredAt"] is not None


async def test_only_subscribed_events_are_sent(
    tenant: Tenant, receiver: Receiver, app_runtime: Runtime
) -> None:
    updates = await subscribe(tenant, receiver.url("/updates"), ["ticket.updated"])
    everything = await subscribe(tenant, receiver.url("/all"), ["ticket.*"])
    paused = await subscribe(tenant, receiver.url("/off"), ["*"], isActive=False)
    ticket = await new_ticket(tenant)
    patched = await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"priority": "High"})
    assert patched.status_code == 200, patched.text
    await sender_of(app_runtime).idle()
    by_path = sorted((r.path, orjson.loads(r.body)["type"]) for r in receiver.received)
    assert by_path == [
        ("/all", "ticket.created"),
        ("/all", "ticket.updated"),
        ("/updates", "ticket.updated"),
    ]
    assert len(await deliveries(tenant, updates["id"])) == 1
    assert len(await deliveries(tenant, everything["id"])) == 2
    assert await deliveries(tenant, paused["id"]) == []


async def test_a_change_of_custom_field_values_is_one_event(
    tenant: Tenant, receiver: Receiver, app_runtime: Runtime
) -> None:
    for entity, key in (("ticket", "plan"), ("user", "tier")):
        body = {"entity": entity, "key": key, "label": key, "type": "text"}
        data(await tenant.post("/v1/custom-fields", json=body), 201)
    await subscribe(tenant, receiver.url(), ["*"])
    ticket = await new_ticket(tenant)
    await sender_of(app_runtime).idle()
    receiver.received.clear()
    path = f"/v1/tickets/{ticket['id']}"
    data(await tenant.patch(path, json={"priority": "High", "customFields": {"plan": "gold"}}))
    data(await tenant.patch(f"{path}/custom-fields", json={"customFields": {"plan": "silver"}}))
    user = f"/v1/users/{ticket['customer']['id']}/custom-fields"
    data(await tenant.patch(user, json={"customFields": {"tier": "paid"}}))
    await sender_of(app_runtime).idle()
    got = [orjson.loads(r.body) for r in receiver.received]
    assert [(b["type"], b["payload"]["changes"]) for b in got] == [
        ("ticket.updated", {"priority": ["Medium", "High"], "customFields.plan": [None, "gold"]}),
        ("ticket.updated", {"customFields.plan": ["gold", "silver"]}),
        ("custom_fields.updated", {"tier": [None, "paid"]}),
    ]
    named = await subscribe(tenant, receiver.url(), ["custom_fields.updated"])
    assert named["events"] == ["custom_fields.updated"]


async def test_failures_are_retried_with_backoff(
    tenant: Tenant, receiver: Receiver, app_runtime: Runtime
) -> None:
    receiver.answer = lambda n: 500 if n < 2 else 204
    hook = await subscribe(tenant, receiver.url(), ["ticket.created"])
    await new_ticket(tenant)
    sender = sender_of(app_runtime)
    await sender.idle()
    [first] = await deliveries(tenant, hook["id"])
    assert (first["status"], first["attempts"], first["statusCode"]) == ("pending", 1, 500)
    assert first["error"] == "HTTP 500"
    due = first["nextAttemptAt"]
    assert due - first["createdAt"] in range(BACKOFF[0], BACKOFF[0] + 3)
    assert await sender.run_due(at=due - 1) == 0  # not yet
    assert len(receiver.received) == 1
    assert await sender.run_due(at=due) == 1
    [second] = await deliveries(tenant, hook["id"])
    assert (second["status"], second["attempts"]) == ("pending", 2)
    assert second["nextAttemptAt"] == due + BACKOFF[1]
    assert await sender.run_due(at=second["nextAttemptAt"]) == 1
    [done] = await deliveries(tenant, hook["id"])
    assert (done["status"], done["attempts"], done["statusCode"]) == ("succeeded", 3, 204)
    ids = {r.headers["enque-delivery"] for r in receiver.received}
    assert ids == {done["id"]}  # the same delivery id on every attempt
    assert data(await tenant.get(f"/v1/webhooks/{hook['id']}"))["failureCount"] == 0


async def test_repeated_failures_disable_the_webhook(
    tenant: Tenant,
    receiver: Receiver,
    app_runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    events: list[Any],
) -> None:
    monkeypatch.setattr(delivery, "DISABLE_AFTER", 3)
    receiver.answer = lambda n: 503
    hook = await subscribe(tenant, receiver.url(), ["ticket.created"])
    for _ in range(3):
        await new_ticket(tenant)
    await sender_of(app_runtime).idle()
    state = data(await tenant.get(f"/v1/webhooks/{hook['id']}"))
    assert state["isActive"] is False and state["failureCount"] == 3
    assert state["disabledAt"] is not None
    assert [e.payload["id"] for e in events if e.type == "webhook.disabled"] == [hook["id"]]
    await new_ticket(tenant)
    await sender_of(app_runtime).idle()
    assert len(receiver.received) == 3
    # pending retries of a disabled webhook end as failed without a request
    await sender_of(app_runtime).run_due(at=2**40)
    assert {d["status"] for d in await deliveries(tenant, hook["id"])} == {"failed"}
    assert len(receiver.received) == 3
    on = await tenant.patch(f"/v1/webhooks/{hook['id']}", json={"isActive": True})
    assert data(on)["failureCount"] == 0 and data(on)["disabledAt"] is None


async def test_private_targets_are_refused_unless_allowed(
    tenant: Tenant, receiver: Receiver, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = await subscribe(tenant, receiver.url(), ["ticket.created"])
    monkeypatch.setattr(app_runtime.settings, "webhook_allowed_hosts", "")
    await new_ticket(tenant)
    await sender_of(app_runtime).idle()
    assert receiver.received == []
    [refused] = await deliveries(tenant, hook["id"])
    assert refused["status"] == "pending" and "non-public address" in refused["error"]
    for url in (
        receiver.url(),
        receiver.url(host="localhost"),  # refused after DNS resolution
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://100.64.0.1/x",
    ):
        failure = error(
            await tenant.post("/v1/webhooks", json={"url": url, "events": ["*"]}),
            422,
            "VALIDATION_ERROR",
        )
        assert failure["details"][0]["path"] == "url", url
    for url in ("ftp://example.com/x", "http://user:pw@example.com/x", "not a url"):
        error(
            await tenant.post("/v1/webhooks", json={"url": url, "events": ["*"]}),
            422,
            "VALIDATION_ERROR",
        )


async def test_a_redirect_to_a_refused_address_is_not_followed(
    tenant: Tenant, receiver: Receiver, app_runtime: Runtime
) -> None:
    """Every connection is checked: the allowed receiver redirects to `localhost`, a name
    the allow-list does not hold that resolves to loopback, and the redirect is refused."""
    async with serve() as target:
        receiver.redirect_to = target.url(host="localhost")
        hook = await subscribe(tenant, receiver.url(), ["ticket.created"])
        await new_ticket(tenant)
        await sender_of(app_runtime).idle()
        assert len(receiver.received) == 1 and target.received == []
        [logged] = await deliveries(tenant, hook["id"])
        assert logged["status"] == "pending" and "non-public address" in logged["error"]
        receiver.redirect_to = target.url()  # an allowed host: followed
        await sender_of(app_runtime).run_due(at=logged["nextAttemptAt"])
        assert len(target.received) == 1
        [done] = await deliveries(tenant, hook["id"])
        assert done["status"] == "succeeded"


async def test_management_is_for_admins_and_validated(
    tenant: Tenant, receiver: Receiver, smtp_server: Any
) -> None:
    from tests.support.people import add_member

    agent = await add_member(tenant, smtp_server, role="manager")
    body = {"url": receiver.url(), "events": ["ticket.created"]}
    error(await agent.request("POST", "/v1/webhooks", json=body), 403, "FORBIDDEN")
    error(await agent.request("GET", "/v1/webhooks"), 403, "FORBIDDEN")
    failure = error(
        await tenant.post("/v1/webhooks", json={**body, "events": ["ticket.created", "nope"]}),
        422,
        "VALIDATION_ERROR",
    )
    assert failure["details"] == [{"path": "events.1", "message": "unknown event 'nope'"}]
    hook = await subscribe(tenant, receiver.url(), ["ticket.created"])
    patched = data(
        await tenant.patch(f"/v1/webhooks/{hook['id']}", json={"events": ["comment.created"]})
    )
    assert patched["events"] == ["comment.created"]
    assert (await tenant.delete(f"/v1/webhooks/{hook['id']}")).status_code == 204
    error(await tenant.get(f"/v1/webhooks/{hook['id']}"), 404, "NOT_FOUND")


async def test_one_endpoints_deliveries_of_a_batch_arrive_in_the_order_of_their_events(
    tenant: Tenant, receiver: Receiver, app_runtime: Runtime
) -> None:
    receiver.answer = lambda n: 503 if n < 8 else 200  # every first attempt fails
    await subscribe(tenant, receiver.url(), ["ticket.created"])
    made = [(await new_ticket(tenant))["id"] for _ in range(8)]
    await sender_of(app_runtime).idle()
    receiver.received.clear()
    await sender_of(app_runtime).run_due(at=2**40)  # the retries, in one batch
    got = [orjson.loads(r.body)["payload"]["id"] for r in receiver.received]
    assert got == made
