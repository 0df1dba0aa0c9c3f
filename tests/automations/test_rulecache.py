"""Rules kept between events: no query while nothing changed; a change made through any worker
is seen by every other one on its next event (the token lives in the shared cache)."""

from __future__ import annotations

from typing import Any

import pytest

from enque.activity.service import Actor
from enque.automations import service
from enque.automations.rulecache import rule_cache
from enque.automations.schemas import AutomationIn, AutomationPatch
from enque.core.runtime import Runtime
from tests.support.api import Tenant

TRIGGER = "ticket.created"


async def names(runtime: Runtime, workspace_id: str) -> list[str]:
    async with runtime.db.session(write=False) as session:
        rules = await rule_cache(runtime).rules(
            runtime, session, workspace_id=workspace_id, trigger=TRIGGER
        )
    return [rule.name for rule in rules]


async def add_rule(runtime: Runtime, tenant: Tenant, name: str) -> str:
    body = {"name": name, "trigger": TRIGGER, "actions": [{"type": "add_tag", "value": name}]}
    async with runtime.db.transaction() as session:
        rule = await service.create_automation(
            session,
            workspace_id=tenant.workspace_id,
            actor=Actor("agent", tenant.agent_id),
            data=AutomationIn.model_validate(body),
        )
    return rule.id


async def change(runtime: Runtime, tenant: Tenant, rule_id: str, **fields: Any) -> None:
    async with runtime.db.transaction() as session:
        await service.update_automation(
            session,
            workspace_id=tenant.workspace_id,
            actor=Actor("agent", tenant.agent_id),
            automation_id=rule_id,
            changes=AutomationPatch.model_validate(fields),
        )


async def test_a_change_on_one_worker_reaches_the_other(
    tenant: Tenant, workers: tuple[Runtime, Runtime], queries: list[str]
) -> None:
    first, second = workers
    rule_id = await add_rule(second, tenant, "a")
    assert await names(first, tenant.workspace_id) == ["a"]
    queries.clear()
    assert await names(first, tenant.workspace_id) == ["a"]
    assert queries == []  # kept: no query at all

    await add_rule(second, tenant, "b")
    assert await names(first, tenant.workspace_id) == ["a", "b"]
    await change(second, tenant, rule_id, position=1)  # reordered
    assert await names(first, tenant.workspace_id) == ["b", "a"]
    await change(second, tenant, rule_id, isActive=False)
    assert await names(first, tenant.workspace_id) == ["b"]
    async with second.db.transaction() as session:
        await service.delete_automation(
            session,
            workspace_id=tenant.workspace_id,
            actor=Actor("agent", tenant.agent_id),
            automation_id=(await add_rule(second, tenant, "c")),
        )
    assert await names(first, tenant.workspace_id) == ["b"]


async def test_a_rolled_back_change_keeps_the_rules(
    tenant: Tenant, workers: tuple[Runtime, Runtime], queries: list[str]
) -> None:
    first, second = workers
    rule_id = await add_rule(second, tenant, "kept")
    assert await names(first, tenant.workspace_id) == ["kept"]
    with pytest.raises(RuntimeError):
        async with second.db.transaction() as session:
            await service.update_automation(
                session,
                workspace_id=tenant.workspace_id,
                actor=Actor("agent", tenant.agent_id),
                automation_id=rule_id,
                changes=AutomationPatch.model_validate({"isActive": False}),
            )
            raise RuntimeError("the request failed")
    queries.clear()
    assert await names(first, tenant.workspace_id) == ["kept"]
    assert queries == []


async def test_workspaces_and_triggers_are_kept_apart(
    tenant: Tenant, make_tenant: Any, workers: tuple[Runtime, Runtime]
) -> None:
    first, second = workers
    other = await make_tenant()
    await add_rule(second, tenant, "mine")
    await add_rule(second, other, "theirs")
    assert await names(first, tenant.workspace_id) == ["mine"]
    assert await names(first, other.workspace_id) == ["theirs"]
    async with first.db.session(write=False) as session:
        updated = await rule_cache(first).rules(
            first, session, workspace_id=tenant.workspace_id, trigger="ticket.updated"
        )
    assert updated == ()
