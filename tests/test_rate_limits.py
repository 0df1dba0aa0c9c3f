"""Rate limits (api.md): headers, 429 with Retry-After, and limits shared by workers via Redis."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from enque.app import create_app
from enque.core.migrate import upgrade
from tests.conftest import settings_from
from tests.support.api import PASSWORD, error, register
from tests.support.server import ServerProcess
from tests.support.services import (
    REDIS_TEST_URL,
    create_pg_database,
    drop_pg_database,
    postgres_available,
    redis_available,
    require,
)

LIMITS = {
    "RATE_LIMIT_AUTH": "3/15minute",
    "RATE_LIMIT_READ": "5/minute",
    "RATE_LIMIT_WRITE": "4/minute",
}


@pytest.fixture
async def limited(base_env: dict[str, str], database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app with rate limits on (in-process storage) and small limits."""
    env = {**base_env, **LIMITS, "RATE_LIMIT_ENABLED": "true"}
    settings = settings_from(env, database_url=database_url)
    await upgrade(settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_reads_and_writes_are_limited_per_agent_with_headers(limited: httpx.AsyncClient):
    tenant = await register(limited)
    for remaining in range(4, -1, -1):
        response = await tenant.get("/v1/auth/me")
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit"] == "5"
        assert response.headers["x-ratelimit-remaining"] == str(remaining)
        assert int(response.headers["x-ratelimit-reset"]) > 1_700_000_000
    refused = await tenant.get("/v1/auth/me")
    error(refused, 429, "RATE_LIMIT_EXCEEDED")
    assert 1 <= int(refused.headers["retry-after"]) <= 61
    # writes have their own budget
    response = await tenant.post("/v1/teams", json={"name": "Tier 1"})
    assert response.status_code == 201 and response.headers["x-ratelimit-limit"] == "4"
    # another agent is not affected
    other = await register(limited)
    assert (await other.get("/v1/auth/me")).status_code == 200


async def away_from_a_window_edge(window: int = 15 * 60, margin: int = 60) -> None:
    """The sliding-window counter weighs the previous window near an edge: start mid-window."""
    into = time.time() % window
    if into < margin or into > window - margin:
        await asyncio.sleep((margin - into) % window + 1)


async def test_login_is_limited_per_ip_and_email(limited: httpx.AsyncClient):
    await away_from_a_window_edge()
    tenant = await register(limited, email=f"limit-{secrets.token_hex(4)}@example.com")
    body = {"email": tenant.email, "password": "wrong password"}
    for _ in range(2):  # register used one of the 3 attempts for this email
        error(await limited.post("/v1/auth/login", json=body), 401, "UNAUTHORIZED")
    refused = await limited.post("/v1/auth/login", json={**body, "password": PASSWORD})
    error(refused, 429, "RATE_LIMIT_EXCEEDED")
    assert int(refused.headers["retry-after"]) > 60
    # a different email from the same address still gets its own budget
    other = {"email": f"else-{secrets.token_hex(4)}@example.com", "password": "x" * 10}
    error(await limited.post("/v1/auth/login", json=other), 401, "UNAUTHORIZED")


@pytest.fixture
def shared_env(
    base_env: dict[str, str], tmp_path: Path, worker_id_suffix: str
) -> Iterator[dict[str, str]]:
    """Environment of two worker processes sharing PostgreSQL and Redis."""
    require(postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    require(redis_available(), "Redis on 127.0.0.1:6379")
    name = f"enque_rl_{worker_id_suffix}_{secrets.token_hex(3)}"
    url = create_pg_database(name)
    env = {
        **base_env,
        **LIMITS,
        "RATE_LIMIT_ENABLED": "true",
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_TEST_URL,
        "REDIS_PREFIX": f"enque-test-{secrets.token_hex(4)}:",
        "DATA_DIR": str(tmp_path),
        "ENQUE_TEST_LOGS": str(tmp_path),
    }
    yield env
    drop_pg_database(name)


@pytest.fixture
def two_workers(shared_env: dict[str, str]) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    first = ServerProcess(shared_env).start()
    second = ServerProcess(shared_env)
    try:
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()


def _auth(token: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.slow
async def test_limits_and_revocation_hold_across_two_workers(two_workers):
    first, second = two_workers
    async with (
        httpx.AsyncClient(base_url=first.url) as a,
        httpx.AsyncClient(base_url=second.url) as b,
    ):
        tenant = await register(a)
        statuses = []
        for client in (a, b, a, b, a, b):
            statuses.append(
                (await client.get("/v1/auth/me", headers=_auth(tenant.token))).status_code
            )
        assert statuses == [200, 200, 200, 200, 200, 429]

        # a token revoked through one worker is refused by the other
        login = await b.post("/v1/auth/login", json={"email": tenant.email, "password": PASSWORD})
        token = login.json()["data"]["token"]
        assert (await a.post("/v1/auth/logout", headers=_auth(token))).status_code == 204
        error(await b.get("/v1/auth/me", headers=_auth(token)), 401, "UNAUTHORIZED")

        # a password changed through one worker ends the tokens another worker has cached
        login = await a.post("/v1/auth/login", json={"email": tenant.email, "password": PASSWORD})
        token = login.json()["data"]["token"]
        assert (
            await b.post("/v1/teams", json={"name": "cached"}, headers=_auth(token))
        ).status_code == 201
        change = await a.patch(
            "/v1/profile",
            json={"currentPassword": PASSWORD, "password": "a brand new password"},
            headers=_auth(token),
        )
        assert change.status_code == 200, change.text
        error(
            await b.post("/v1/teams", json={"name": "x"}, headers=_auth(token)), 401, "UNAUTHORIZED"
        )


def test_in_process_counters_start_no_threads_and_expired_ones_are_swept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The in-process storage counts without starting a thread per expiry round, and
    sweeps counters that expired, at most once a second."""
    import threading

    from limits import parse
    from limits.strategies import SlidingWindowCounterRateLimiter

    from enque.core import ratelimit

    storage = ratelimit.InlineExpiryMemoryStorage()
    limiter = SlidingWindowCounterRateLimiter(storage)
    started: list[threading.Thread] = []
    real_start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda t: (started.append(t), real_start(t)))
    per_second = parse("2/second")
    assert limiter.hit(per_second, "read", "a") and limiter.hit(per_second, "read", "a")
    assert not limiter.hit(per_second, "read", "a")  # the limit holds
    for n in range(200):
        limiter.hit(per_second, "read", f"other-{n}")
        time.sleep(0.0005)
    assert started == []
    assert any(key.startswith("LIMITER/read/other-") for key in storage.storage)

    clock = time.monotonic() + 10
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: clock)
    monkeypatch.setattr("limits.storage.memory.time.time", lambda: 4_000_000_000.0)
    limiter.hit(per_second, "read", "late")  # a sweep is due: the others have expired
    assert not any(key.startswith("LIMITER/read/other-") for key in storage.storage)
    assert started == []
