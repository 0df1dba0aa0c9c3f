"""SQLite under concurrent writers never fails with "database is locked"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from enque.app import create_app
from enque.core.migrate import upgrade
from tests.conftest import settings_from
from tests.support.api import PASSWORD, register
from tests.support.server import ServerProcess


@pytest.fixture
async def sqlite_app(base_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Any]:
    settings = settings_from(base_env, database_url=f"sqlite:///{tmp_path / 'busy.db'}")
    await upgrade(settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def test_many_concurrent_writers_in_one_process(sqlite_app: Any):
    transport = httpx.ASGITransport(app=sqlite_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        tenants = await asyncio.gather(*(register(client) for _ in range(50)))
        logins = await asyncio.gather(
            *(
                client.post("/v1/auth/login", json={"email": t.email, "password": PASSWORD})
                for t in tenants
            )
        )
        assert [r.status_code for r in logins] == [200] * 50
        teams = await asyncio.gather(
            *(
                t.post("/v1/teams", json={"name": f"Team {i % 50}"})
                for i, t in enumerate(tenants * 2)
            )
        )
        assert sorted({r.status_code for r in teams}) == [201, 409]  # each name twice: one wins
        assert sum(r.status_code == 201 for r in teams) == 50


@pytest.mark.slow
async def test_two_processes_writing_one_sqlite_file(base_env: dict[str, str], tmp_path: Path):
    env = {
        **base_env,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
        "DATA_DIR": str(tmp_path),
        "ENQUE_TEST_LOGS": str(tmp_path),
    }
    with ServerProcess(env) as first, ServerProcess(env) as second:
        async with (
            httpx.AsyncClient(base_url=first.url, timeout=60) as a,
            httpx.AsyncClient(base_url=second.url, timeout=60) as b,
        ):
            tenant = await register(a)
            headers = {"Authorization": f"Bearer {tenant.token}"}
            requests = [
                client.post("/v1/teams", json={"name": f"Team {i}"}, headers=headers)
                for i, client in enumerate([a, b] * 30)
            ]
            responses = await asyncio.gather(*requests)
            assert [r.status_code for r in responses] == [201] * 60, [
                r.text for r in responses if r.status_code != 201
            ][:3]
            listed = (await b.get("/v1/teams?limit=200", headers=headers)).json()["data"]
            assert len(listed) == 60
