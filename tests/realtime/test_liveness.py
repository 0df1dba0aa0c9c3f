"""Back-pressure, keep-alive, revoked tokens and presence, against a running uvicorn server."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace

import pytest

from enque.core.events import Event
from enque.core.runtime import Runtime
from enque.realtime.hub import Hub
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import add_agent, new_ticket
from tests.support.realtime import Socket


@pytest.fixture
def small_queues(hub: Hub) -> Iterator[None]:
    before = hub.queue_size
    hub.queue_size = 4
    yield
    hub.queue_size = before


@pytest.mark.usefixtures("small_queues")
async def test_a_client_that_stops_reading_gets_resync_and_others_do_not_wait(
    live_url: str, tenant: Tenant, app_runtime: Runtime
):
    # max_queue=1: the client library stops reading the socket once one message waits;
    # a small receive buffer: the server's buffers fill, then its queue for this socket
    slow = await Socket.ready(live_url, tenant.token, "tickets", max_queue=1, rcvbuf=65536)
    fast = await Socket.ready(live_url, tenant.token, "tickets")
    blob = secrets.token_urlsafe(48 * 1024)  # 64 KB that compression cannot shrink
    count = 400  # 25 MB: more than the socket buffers between the server and the client
    for n in range(count):
        await app_runtime.broker.publish(
            Event("ticket.updated", tenant.workspace_id, {"n": n, "blob": blob}, ["tickets"])
        )
        # the reading client gets each event while the other one is stuck
        assert (await fast.expect("ticket.updated"))["payload"]["n"] == n
    await fast.send({"type": "ping"})
    assert (await fast.expect("pong"))["type"] == "pong"

    code, seen = await slow.closed(timeout=90)
    kinds = [m["type"] for m in seen]
    assert code == 1013
    assert kinds[-1] == "resync" and kinds.count("ticket.updated") < count
    numbers = [m["payload"]["n"] for m in seen if m["type"] == "ticket.updated"]
    assert numbers == list(range(len(numbers)))  # in order, nothing doubled, then resync
    await fast.close()


async def test_silent_clients_are_dropped_and_others_pinged(
    live_url: str, tenant: Tenant, hub: Hub, app_runtime: Runtime
):
    ticket = await new_ticket(tenant)
    watcher = await Socket.ready(live_url, tenant.token, f"ticket:{ticket['id']}")
    colleague = await add_agent(app_runtime, tenant)
    silent = await Socket.ready(live_url, colleague.token)
    await silent.send({"type": "presence", "ticketId": ticket["id"], "state": "viewing"})
    assert (await watcher.expect("presence"))["payload"]["state"] == "viewing"

    await watcher.send({"type": "pong"})  # the watcher answers; the other one stays silent
    for conn in hub.workspaces[tenant.workspace_id]:
        if conn.agent_id == colleague.agent_id:
            conn.last_seen -= hub.ping_timeout + 1  # as if silent for longer than the timeout
    await hub.sweep()
    assert (await silent.closed())[0] == 1011
    assert (await watcher.next())["type"] == "presence"  # the dropped agent left
    viewers = data(await tenant.get(f"/v1/tickets/{ticket['id']}/viewers"))
    assert viewers == []

    await hub.sweep()
    raw = await watcher.ws.recv()
    assert '"type":"ping"' in str(raw)
    await watcher.close()


async def test_revoked_token_closed_at_next_event(live_url: str, tenant: Tenant, make_tenant):
    login = data(
        await tenant.http.post(
            "/v1/auth/login", json={"email": tenant.email, "password": tenant.password}
        )
    )
    other_session = await Socket.ready(live_url, login["token"], "tickets")
    sock = await Socket.ready(live_url, tenant.token, "tickets")
    assert (await tenant.post("/v1/auth/logout")).status_code == 204

    await new_ticket(replace(tenant, token=login["token"]), subject="after logout")
    code, seen = await sock.closed()
    assert code == 4401 and not any(m["type"] == "ticket.created" for m in seen)
    # the other session of the same agent is untouched
    assert (await other_session.expect("ticket.created"))["payload"]["subject"] == "after logout"
    await other_session.close()


async def test_revoked_token_closed_at_the_clients_ping(live_url: str, tenant: Tenant):
    sock = await Socket.ready(live_url, tenant.token)
    await sock.send({"type": "ping"})
    assert (await sock.next())["type"] == "pong"
    assert (await tenant.post("/v1/auth/logout")).status_code == 204
    await sock.send({"type": "ping"})
    code, seen = await sock.closed()
    assert code == 4401 and not any(m["type"] == "pong" for m in seen)


async def test_revoked_token_closed_at_ping(
    live_url: str, tenant: Tenant, hub: Hub, app_runtime: Runtime
):
    colleague = await add_agent(app_runtime, tenant)
    sock = await Socket.ready(live_url, colleague.token)
    data(
        await tenant.patch(f"/v1/agents/{colleague.agent_id}", json={"isActive": False}),
    )
    await hub.sweep()
    assert (await sock.closed())[0] == 4401


async def test_presence_and_viewers(
    live_url: str, tenant: Tenant, make_tenant, app_runtime: Runtime
):
    ticket = await new_ticket(tenant)
    path = f"/v1/tickets/{ticket['id']}/viewers"
    colleague = await add_agent(app_runtime, tenant)
    mine = await Socket.ready(live_url, tenant.token, f"ticket:{ticket['id']}")
    theirs = await Socket.ready(live_url, colleague.token, f"ticket:{ticket['id']}")
    second_tab = await Socket.ready(live_url, colleague.token)

    await theirs.send({"type": "presence", "ticketId": ticket["id"], "state": "viewing"})
    seen = await mine.expect("presence")
    assert seen["payload"] == {
        "ticketId": ticket["id"],
        "agentId": colleague.agent_id,
        "state": "viewing",
    }
    await second_tab.send({"type": "presence", "ticketId": ticket["id"], "state": "typing"})
    assert (await mine.expect("presence"))["payload"]["state"] == "typing"
    [viewer] = data(await tenant.get(path))
    assert viewer["agentId"] == colleague.agent_id and viewer["state"] == "typing"

    # the colleague's first socket saw its own second tab start typing
    own = await theirs.expect("presence")
    assert own["payload"]["agentId"] == colleague.agent_id
    assert own["payload"]["state"] == "typing"
    await mine.send({"type": "presence", "ticketId": ticket["id"], "state": "viewing"})
    assert (await theirs.expect("presence"))["payload"]["agentId"] == tenant.agent_id
    assert {v["agentId"] for v in data(await tenant.get(path))} == {
        tenant.agent_id,
        colleague.agent_id,
    }

    await second_tab.close()  # the colleague still views in the other tab
    assert (await mine.expect("presence"))["payload"]["state"] == "viewing"
    await theirs.send({"type": "presence", "ticketId": ticket["id"], "state": "left"})
    assert (await mine.expect("presence"))["payload"]["state"] == "left"
    assert [v["agentId"] for v in data(await tenant.get(path))] == [tenant.agent_id]

    await mine.close()
    while (seen := await theirs.expect("presence"))["payload"]["agentId"] != tenant.agent_id:
        pass  # the colleague's own changes
    assert seen["payload"] == {
        "ticketId": ticket["id"],
        "agentId": tenant.agent_id,
        "state": "left",
    }
    assert data(await tenant.get(path)) == []

    stranger = await make_tenant()
    error(await stranger.get(path), 404, "NOT_FOUND")
    error(await tenant.get("/v1/tickets/nope/viewers"), 404, "NOT_FOUND")
    await theirs.close()
