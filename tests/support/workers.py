"""Two workers' runtimes sharing one Redis, and the SQL the first one runs: for the caches
kept per process and renewed through the shared cache (rules, per-workspace facts)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import event

from enque.config import Settings
from enque.core.runtime import Runtime
from tests.support.services import REDIS_TEST_URL, redis_available, require


@pytest.fixture
async def workers(migrated: Settings) -> AsyncIterator[tuple[Runtime, Runtime]]:
    """Two processes' runtimes on the test database, sharing one Redis."""
    require(redis_available(), "Redis on 127.0.0.1:6379")
    shared = migrated.model_copy(
        update={"redis_url": REDIS_TEST_URL, "redis_prefix": f"enque-test-{secrets.token_hex(4)}:"}
    )
    first, second = Runtime.build(shared), Runtime.build(shared)
    yield first, second
    await first.close()
    await second.close()


@pytest.fixture
def queries(workers: tuple[Runtime, Runtime]) -> Iterator[list[str]]:
    """The SQL the first worker runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    engine = workers[0].db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)
