"""A task never holds two pooled connections: with a burst of requests, every connection can
end up held by tasks waiting for a second one, and the process stops answering."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import create_async_engine

from enque.app import create_app
from enque.config import Settings
from enque.core.db import Database, NestedConnectionError
from enque.core.pool import FairAsyncQueuePool
from tests.conftest import settings_from
from tests.support.api import register


async def hold_one_then_take_another(db: Database) -> None:
    async with db.session(write=True) as holding, db.session(write=False) as second:
        await holding.execute(text("SELECT 1"))
        await second.execute(text("SELECT 1"))


async def test_a_second_connection_in_one_task_is_refused_outside_production(
    migrated: Settings,
):
    db = Database(migrated)
    try:
        with pytest.raises(NestedConnectionError, match="second database connection"):
            await hold_one_then_take_another(db)
        # one after the other is the normal case
        for _ in range(2):
            async with db.session() as session:
                await session.execute(text("SELECT 1"))
    finally:
        await db.dispose()


async def test_in_production_it_is_logged_with_the_callers_code(
    migrated: Settings, caplog: pytest.LogCaptureFixture
):
    db = Database(migrated.model_copy(update={"env": "production"}))
    try:
        with caplog.at_level(logging.ERROR, logger="enque.core.db"):
            await hold_one_then_take_another(db)
        [record] = [r for r in caplog.records if "second database connection" in r.getMessage()]
        assert "hold_one_then_take_another" not in record.getMessage()  # a test, not the package
    finally:
        await db.dispose()


@pytest.fixture
async def small_pool_app(base_env: dict[str, str], migrated: Settings) -> AsyncIterator[Any]:
    settings = settings_from(base_env, database_url=migrated.database_url, db_pool_size=1)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def test_a_burst_on_a_new_workspace_with_a_tiny_pool(small_pool_app: Any):
    """Forty tickets at once for one new customer, each request reading the workspace's
    custom fields for the first time: every request finishes."""
    transport = httpx.ASGITransport(app=small_pool_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://enque.test") as client:
        tenant = await register(client)
        body = {"body": "<p>Hello</p>", "customer": {"email": "burst@example.com", "name": "B"}}
        created = await asyncio.wait_for(
            asyncio.gather(
                *(tenant.post("/v1/tickets", json={**body, "subject": f"#{i}"}) for i in range(40))
            ),
            timeout=120,
        )
        assert [r.status_code for r in created] == [201] * 40
        customers = {r.json()["data"]["customer"]["id"] for r in created}
        assert len(customers) == 1


@pytest.fixture
async def one_connection(tmp_path: Any) -> AsyncIterator[Any]:
    """An engine on the app's pool with a single connection."""
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'one.db'}",
        poolclass=FairAsyncQueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.2,
    )
    yield engine
    await engine.dispose()


async def test_a_freed_connection_goes_to_the_longest_waiting_task(one_connection: Any):
    order: list[str] = []

    async def use(name: str) -> None:
        async with one_connection.connect() as connection:
            order.append(name)
            await connection.execute(text("SELECT 1"))

    held = await one_connection.connect()
    await held.execute(text("SELECT 1"))
    waiting = [asyncio.create_task(use(name)) for name in ("first", "second", "third")]
    await asyncio.sleep(0.05)
    await held.close()
    await use("releaser, asking again at once")  # queues behind the three, does not barge
    await asyncio.gather(*waiting)
    assert order == ["first", "second", "third", "releaser, asking again at once"]


async def test_a_waiter_that_gives_up_loses_no_connection(one_connection: Any):
    held = await one_connection.connect()
    await held.execute(text("SELECT 1"))

    async def take() -> Any:
        return await one_connection.connect()

    cancelled = asyncio.create_task(take())
    timed_out = asyncio.create_task(asyncio.wait_for(take(), 0.05))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    with pytest.raises(TimeoutError):
        await timed_out
    with pytest.raises(PoolTimeout):  # the pool's own limit
        await take()
    await held.close()
    for _ in range(3):
        async with one_connection.connect() as connection:
            await connection.execute(text("SELECT 1"))
    assert one_connection.pool.checkedout() == 0
