"""Two `enque serve` processes sharing Redis and PostgreSQL: events, presence and revocation
made through one worker reach sockets on the other."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from tests.support.api import data, register
from tests.support.helpdesk import new_ticket
from tests.support.realtime import Socket
from tests.support.server import ServerProcess
from tests.support.services import (
    REDIS_TEST_URL,
    create_pg_database,
    drop_pg_database,
    postgres_available,
    redis_available,
    require,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
def shared_env(
    base_env: dict[str, str], tmp_path: Path, worker_id_suffix: str
) -> Iterator[dict[str, str]]:
    require(postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    require(redis_available(), "Redis on 127.0.0.1:6379")
    name = f"enque_rt_{worker_id_suffix}_{secrets.token_hex(3)}"
    url = create_pg_database(name)
    yield {
        **base_env,
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_TEST_URL,
        "REDIS_PREFIX": f"enque-test-{secrets.token_hex(4)}:",
        "DATA_DIR": str(tmp_path),
        "ENQUE_TEST_LOGS": str(tmp_path),
    }
    drop_pg_database(name)


@pytest.fixture
async def workers(
    shared_env: dict[str, str],
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, str, str]]:
    first = ServerProcess(shared_env).start()
    second = ServerProcess(shared_env)
    try:
        second.start()
        async with (
            httpx.AsyncClient(base_url=first.url) as a,
            httpx.AsyncClient(base_url=second.url) as b,
        ):
            ws = "ws://127.0.0.1:{}/v1/realtime"
            yield a, b, ws.format(first.port), ws.format(second.port)
    finally:
        second.stop()
        first.stop()


async def test_a_change_on_one_worker_reaches_sockets_on_the_other(workers):
    a, b, ws_a, ws_b = workers
    tenant = await register(a)
    stranger = await register(b)
    on_b = await Socket.ready(ws_b, tenant.token, "tickets")
    stranger_on_b = await Socket.ready(ws_b, stranger.token, "tickets")

    ticket = await new_ticket(tenant)  # through worker A
    created = await on_b.expect("ticket.created")
    assert created["payload"]["id"] == ticket["id"]
    data(await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"priority": "Critical"}))
    assert (await on_b.expect("ticket.updated"))["payload"]["changes"]["priority"][1] == "Critical"
    # the other workspace's socket on B got none of it: its own event comes first
    own = await new_ticket(stranger)
    assert (await stranger_on_b.next())["payload"]["id"] == own["id"]

    # presence set on A is seen on B, by socket and by the viewers route
    await on_b.send({"type": "subscribe", "channel": f"ticket:{ticket['id']}"})
    await on_b.expect("subscribed")
    on_a = await Socket.ready(ws_a, tenant.token)
    await on_a.send({"type": "presence", "ticketId": ticket["id"], "state": "typing"})
    seen = await on_b.expect("presence")
    assert seen["payload"] == {
        "ticketId": ticket["id"],
        "agentId": tenant.agent_id,
        "state": "typing",
    }
    viewers = data(await replace(tenant, http=b).get(f"/v1/tickets/{ticket['id']}/viewers"))
    assert [(v["agentId"], v["state"]) for v in viewers] == [(tenant.agent_id, "typing")]
    await on_a.close()  # the socket on A dies: B hears that the agent left
    assert (await on_b.expect("presence"))["payload"]["state"] == "left"
    assert data(await replace(tenant, http=b).get(f"/v1/tickets/{ticket['id']}/viewers")) == []

    # a token revoked through A closes its socket on B at the next event
    login = data(
        await a.post("/v1/auth/login", json={"email": tenant.email, "password": tenant.password})
    )
    assert (await tenant.post("/v1/auth/logout")).status_code == 204
    await new_ticket(replace(tenant, token=login["token"]))
    assert (await on_b.closed())[0] == 4401
    await stranger_on_b.close()
