"""Per-workspace facts kept between events: no query while nothing changed; a committed change
is seen at once by the worker that made it and by every other one on its next read (the token
lives in the shared cache); a rolled-back change keeps them."""

from __future__ import annotations

from typing import Any

import pytest

from enque.activity.service import Actor
from enque.core.runtime import Runtime
from enque.csat.hooks import ENABLED
from enque.csat.service import set_settings
from enque.sla.hooks import IN_USE
from enque.sla.models import SlaPolicy
from tests.support.api import Tenant


async def surveys(runtime: Runtime, tenant: Tenant, enabled: bool) -> None:
    async with runtime.db.transaction() as session:
        await set_settings(
            session,
            workspace_id=tenant.workspace_id,
            actor=Actor("agent", tenant.agent_id),
            enabled=enabled,
        )


async def test_a_change_on_one_worker_reaches_the_other(
    tenant: Tenant, workers: tuple[Runtime, Runtime], queries: list[str]
) -> None:
    first, second = workers
    assert await ENABLED.get(first, tenant.workspace_id) is False
    queries.clear()
    assert await ENABLED.get(first, tenant.workspace_id) is False
    assert queries == []  # kept: no query at all

    await surveys(second, tenant, True)
    assert await ENABLED.get(first, tenant.workspace_id) is True
    await surveys(second, tenant, False)
    assert await ENABLED.get(first, tenant.workspace_id) is False


async def test_the_worker_that_commits_sees_its_change_at_once(
    tenant: Tenant, workers: tuple[Runtime, Runtime], queries: list[str]
) -> None:
    first, _ = workers
    assert await IN_USE.get(first, tenant.workspace_id) is False
    async with first.db.transaction() as session:
        session.add(SlaPolicy(workspace_id=tenant.workspace_id, name="Standard"))
        await session.flush()
        assert await IN_USE.get(first, tenant.workspace_id) is False  # not committed yet
    # dropped on commit, before any after-commit hook (the reactions) runs
    assert await IN_USE.get(first, tenant.workspace_id) is True


async def test_a_rolled_back_change_keeps_the_facts(
    tenant: Tenant, workers: tuple[Runtime, Runtime], queries: list[str]
) -> None:
    first, second = workers
    assert await ENABLED.get(first, tenant.workspace_id) is False
    with pytest.raises(RuntimeError):
        async with second.db.transaction() as session:
            await set_settings(
                session,
                workspace_id=tenant.workspace_id,
                actor=Actor("agent", tenant.agent_id),
                enabled=True,
            )
            raise RuntimeError("the request failed")
    queries.clear()
    assert await ENABLED.get(first, tenant.workspace_id) is False
    assert queries == []


async def test_workspaces_are_kept_apart(
    tenant: Tenant, make_tenant: Any, workers: tuple[Runtime, Runtime]
) -> None:
    first, second = workers
    other = await make_tenant()
    assert await ENABLED.get(first, other.workspace_id) is False
    await surveys(second, tenant, True)
    assert await ENABLED.get(first, tenant.workspace_id) is True
    assert await ENABLED.get(first, other.workspace_id) is False


async def test_a_unit_of_work_reads_its_own_uncommitted_change(
    tenant: Tenant, workers: tuple[Runtime, Runtime]
) -> None:
    first, _ = workers
    assert await IN_USE.get(first, tenant.workspace_id) is False
    async with first.db.transaction() as session:
        assert await IN_USE.within(session, tenant.workspace_id) is False  # kept entry
        session.add(SlaPolicy(workspace_id=tenant.workspace_id, name="Standard"))
        await session.flush()
        assert await IN_USE.within(session, tenant.workspace_id) is True  # read in the unit
