"""Dependency outages: while Redis or PostgreSQL is down the API answers 503 SERVICE_UNAVAILABLE
in the envelope and `/health/ready` names the failing part; both recover by themselves once it
is back. The servers stopped here are private ones on free ports, never the shared ones."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import APIRouter
from sqlalchemy.exc import DBAPIError

from enque.app import create_app
from enque.config import Settings
from enque.core.deps import get_session
from enque.core.migrate import upgrade
from tests.conftest import settings_from
from tests.support.api import Tenant, data, error, register
from tests.support.private import PrivatePostgres, PrivateRedis
from tests.support.realtime import Socket
from tests.support.services import free_port, require

pytestmark = pytest.mark.slow


@asynccontextmanager
async def serving(settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan (broker, hub, pools) and a client on it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://enque.test", timeout=15
        ) as client:
            yield client


async def outage_answers(tenant: Tenant, failing: str) -> None:
    """An authenticated read and a write answer 503 in the envelope; readiness names `failing`."""
    listed = await tenant.get("/v1/tickets")
    error(listed, 503, "SERVICE_UNAVAILABLE")
    created = await tenant.post(
        "/v1/tickets", json={"subject": "During the outage", "customer": {"email": "c@e.test"}}
    )
    error(created, 503, "SERVICE_UNAVAILABLE")
    ready = error(await tenant.http.get("/health/ready"), 503, "SERVICE_UNAVAILABLE")
    assert ready["details"]["checks"][failing].startswith("failed"), ready


async def recovers(tenant: Tenant, within: float = 20) -> None:
    """Without a restart of the app, readiness and the API answer 200 again; until then (the
    dependency starting up included) every answer is 503 in the envelope."""
    deadline = time.monotonic() + within
    while True:
        ready = await tenant.http.get("/health/ready")
        listed = await tenant.get("/v1/tickets")
        if ready.status_code == 200 and listed.status_code == 200:
            break
        for response in (ready, listed):
            if response.status_code != 200:
                error(response, 503, "SERVICE_UNAVAILABLE")
        assert time.monotonic() < deadline, f"not recovered: {ready.text} {listed.text}"
        await asyncio.sleep(0.02)
    created = await tenant.post(
        "/v1/tickets", json={"subject": "After the outage", "customer": {"email": "c@e.test"}}
    )
    subjects = [t["subject"] for t in data(await tenant.get("/v1/tickets"))]
    assert data(created, 201)["subject"] == "After the outage"
    assert "During the outage" not in subjects  # a refused write changed nothing


async def stopped(action: Callable[[], Any]) -> None:
    await asyncio.to_thread(action)


async def test_redis_outage_is_503_and_recovers(base_env: dict[str, str], migrated: Settings):
    require(PrivateRedis.available(), "redis-server (to run a private Redis)")
    redis = await asyncio.to_thread(lambda: PrivateRedis().start())
    try:
        # rate limits on: the limiter's Redis connections must fail and recover too
        settings = settings_from(
            base_env,
            database_url=migrated.database_url,
            redis_url=redis.url,
            rate_limit_enabled=True,
            rate_limit_read="100000/minute",
            rate_limit_write="100000/minute",
        )
        async with serving(settings) as http:
            tenant = await register(http)
            data(await tenant.get("/v1/tickets"))
            await stopped(redis.stop)
            await outage_answers(tenant, "cache")
            await stopped(redis.start)
            await recovers(tenant)
    finally:
        await asyncio.to_thread(redis.close)


async def test_postgres_outage_is_503_and_recovers(base_env: dict[str, str]):
    require(PrivatePostgres.available(), "initdb and pg_ctl (to run a private PostgreSQL)")
    pg = PrivatePostgres(fsync=False)
    try:
        await asyncio.to_thread(lambda: pg.init().start())
        url = await asyncio.to_thread(pg.create_database, "enque_outage")
        settings = settings_from(base_env, database_url=url)
        await upgrade(settings)
        async with serving(settings) as http:
            tenant = await register(http)
            data(await tenant.get("/v1/tickets"))
            await stopped(lambda: pg.stop("immediate"))  # a crash: the pool's sockets die
            await outage_answers(tenant, "database")
            await stopped(lambda: pg.start(wait=False))  # asked while it is starting up too
            await recovers(tenant)
    finally:
        await asyncio.to_thread(pg.close)


@asynccontextmanager
async def live(app: Any) -> AsyncIterator[str]:
    """uvicorn on a loopback port around `app` (its lifespan already runs): the socket's URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # pytest's
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"ws://127.0.0.1:{port}/v1/realtime"
    finally:
        server.should_exit = True
        await task


async def test_sockets_resync_after_a_redis_gap(base_env: dict[str, str], migrated: Settings):
    """Events published while Redis was away never arrive: once it is back every socket gets
    `resync` and is closed 1013 (the client reloads over HTTP); a new socket gets events."""
    require(PrivateRedis.available(), "redis-server (to run a private Redis)")
    redis = await asyncio.to_thread(lambda: PrivateRedis().start())
    try:
        settings = settings_from(base_env, database_url=migrated.database_url, redis_url=redis.url)
        app = create_app(settings)
        async with app.router.lifespan_context(app), live(app) as url:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                tenant = await register(http)
                socket = await Socket.ready(url, tenant.token, "tickets")
                await stopped(redis.stop)
                await stopped(redis.start)
                code, seen = await socket.closed(timeout=20)
                assert code == 1013
                assert [m["type"] for m in seen if m["type"] != "ping"] == ["resync"]
                again = await Socket.ready(url, tenant.token, "tickets")
                created = await tenant.post(
                    "/v1/tickets", json={"subject": "Back", "customer": {"email": "c@e.test"}}
                )
                event = await again.expect("ticket.created")
                assert event["payload"]["id"] == data(created, 201)["id"]
                await again.ws.close()
    finally:
        await asyncio.to_thread(redis.close)


async def test_silent_database_host_is_503(base_env: dict[str, str]):
    """A host that accepts connections and never answers (a hung server, a dropped route):
    requests and readiness answer 503 after the connect timeout, not after a minute."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        settings = settings_from(base_env, database_url=f"postgresql://enque@127.0.0.1:{port}/x")
        async with serving(settings) as http:
            login = http.post("/v1/auth/login", json={"email": "a@e.test", "password": "whatever1"})
            failure = error(await asyncio.wait_for(login, 30), 503, "SERVICE_UNAVAILABLE")
            assert "did not answer" in failure["message"]
            ready = await asyncio.wait_for(http.get("/health/ready"), 30)
            checks = error(ready, 503, "SERVICE_UNAVAILABLE")["details"]["checks"]
            assert checks["database"] == "failed: TimeoutError"


@pytest.fixture
async def failing_app(base_env: dict[str, str]) -> AsyncIterator[Any]:
    """An app on PostgreSQL and Redis (both unreachable) whose test route raises what a driver
    raises during an outage: asyncpg errors come unwrapped from the pool, redis-py's are its own."""
    import asyncpg
    import redis.exceptions

    settings = settings_from(
        base_env,
        database_url="postgresql://enque@127.0.0.1:9/none",
        redis_url="redis://127.0.0.1:9/0",
    )
    app = create_app(settings)
    raising = APIRouter()
    failures: dict[str, Exception] = {
        "starting": asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        "shutdown": asyncpg.exceptions.AdminShutdownError("terminating connection"),
        "full": asyncpg.exceptions.TooManyConnectionsError("too many clients already"),
        "lost": asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        "redis": redis.exceptions.ConnectionError("Connection refused"),
        "redis-timeout": redis.exceptions.TimeoutError("Timeout reading from socket"),
    }

    @raising.get("/v1/test-only/fail/{kind}")
    async def fail(kind: str) -> None:
        raise failures[kind]

    app.include_router(raising)
    yield app


@pytest.mark.parametrize("kind", ["starting", "shutdown", "full", "lost", "redis", "redis-timeout"])
async def test_driver_outage_errors_are_503(failing_app: Any, kind: str):
    transport = httpx.ASGITransport(app=failing_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        failure = error(await client.get(f"/v1/test-only/fail/{kind}"), 503, "SERVICE_UNAVAILABLE")
        assert "unavailable" in failure["message"]


async def test_a_session_that_cannot_close_keeps_the_answer():
    """The database went away after the request's work was done (its connection cannot even
    roll back): closing the request's session does not turn the answer into an error."""

    class DeadSession:
        async def close(self) -> None:
            raise DBAPIError("ROLLBACK", None, ConnectionResetError(), connection_invalidated=True)

    class Db:
        def session(self, *, write: bool) -> DeadSession:
            return DeadSession()

    runtime = SimpleNamespace(db=Db())
    request = SimpleNamespace(
        method="GET", app=SimpleNamespace(state=SimpleNamespace(runtime=runtime))
    )
    dependency = get_session(request)  # type: ignore[arg-type]
    assert isinstance(await anext(dependency), DeadSession)
    with pytest.raises(StopAsyncIteration):
        await anext(dependency)  # the request is over: the session closes
