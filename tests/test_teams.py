"""Teams: create, read, rename, soft delete, members; managers write, everyone reads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select

from enque.activity.models import Activity
from enque.teams.models import Team
from tests.support.api import Tenant, data, error
from tests.support.people import add_member


async def create(tenant: Tenant, **body: Any) -> dict[str, Any]:
    return data(await tenant.post("/v1/teams", json=body), 201)


async def test_create_and_read(tenant: Tenant, smtp_server: Any, app_runtime: Any) -> None:
    member = await add_member(tenant, smtp_server)
    team = await create(
        tenant,
        name="Billing",
        description="Invoices",
        icon="coins",
        managerId=tenant.agent_id,
        agentIds=[member.agent_id, tenant.agent_id, member.agent_id],
    )
    assert team["name"] == "Billing" and team["description"] == "Invoices"
    assert team["icon"] == "coins" and team["managerId"] == tenant.agent_id
    assert team["memberIds"] == sorted([member.agent_id, tenant.agent_id])
    assert data(await member.request("GET", f"/v1/teams/{team['id']}")) == team
    assert data(await member.request("GET", "/v1/teams")) == [team]
    async with app_runtime.db.session(write=False) as session:
        [row] = (
            await session.execute(select(Activity).where(Activity.subject_id == team["id"]))
        ).scalars()
    assert row.verb == "team.created" and row.actor_id == tenant.agent_id
    assert row.after == {
        "name": "Billing",
        "managerId": tenant.agent_id,
        "memberIds": sorted([member.agent_id, tenant.agent_id]),
    }


async def test_minimal_team(tenant: Tenant) -> None:
    team = await create(tenant, name="Solo")
    assert (team["description"], team["icon"], team["managerId"], team["memberIds"]) == (
        None,
        None,
        None,
        [],
    )


async def test_names_are_unique_among_live_teams(tenant: Tenant, make_tenant: Any) -> None:
    first = await create(tenant, name="Support")
    failure = error(await tenant.post("/v1/teams", json={"name": "SUPPORT"}), 409, "CONFLICT")
    assert failure["details"] == [{"path": "name", "message": "taken"}]
    other = await create(tenant, name="Sales")
    error(await tenant.patch(f"/v1/teams/{other['id']}", json={"name": "support"}), 409, "CONFLICT")
    await create(await make_tenant(), name="Support")  # other workspaces are separate
    assert (await tenant.delete(f"/v1/teams/{first['id']}")).status_code == 204
    await create(tenant, name="Support")  # the name is free again


async def test_validation(tenant: Tenant, make_tenant: Any) -> None:
    other = await make_tenant()
    invalid: list[dict[str, Any]] = [
        {},
        {"name": ""},
        {"name": "x" * 201},
        {"name": "A", "agentIds": "nope"},
        {"name": "A", "unknown": 1},
    ]
    for bad in invalid:
        error(await tenant.post("/v1/teams", json=bad), 422, "VALIDATION_ERROR")
    body = {"name": "A", "agentIds": [tenant.agent_id, other.agent_id, "ghost"]}
    failure = error(await tenant.post("/v1/teams", json=body), 422, "VALIDATION_ERROR")
    assert [d["path"] for d in failure["details"]] == ["agentIds.1", "agentIds.2"]
    assert other.agent_id in failure["details"][0]["message"]
    failure = error(
        await tenant.post("/v1/teams", json={"name": "A", "managerId": other.agent_id}),
        422,
        "VALIDATION_ERROR",
    )
    assert failure["details"][0]["path"] == "managerId"
    assert data(await tenant.get("/v1/teams")) == []


async def test_update(tenant: Tenant, smtp_server: Any, app_runtime: Any) -> None:
    member = await add_member(tenant, smtp_server)
    team = await create(tenant, name="Ops", description="Old", managerId=tenant.agent_id)
    path = f"/v1/teams/{team['id']}"
    changed = data(
        await tenant.patch(path, json={"name": "Operations", "managerId": member.agent_id})
    )
    assert changed["name"] == "Operations" and changed["managerId"] == member.agent_id
    assert changed["description"] == "Old"
    cleared = data(await tenant.patch(path, json={"description": None, "managerId": None}))
    assert cleared["description"] is None and cleared["managerId"] is None
    assert data(await tenant.patch(path, json={}))["name"] == "Operations"
    error(await tenant.patch(path, json={"name": ""}), 422, "VALIDATION_ERROR")
    failure = error(await tenant.patch(path, json={"name": None}), 422, "VALIDATION_ERROR")
    assert failure["details"][0]["path"] == "name"
    error(await tenant.patch(path, json={"managerId": "ghost"}), 422, "VALIDATION_ERROR")
    async with app_runtime.db.session(write=False) as session:
        updates = (
            (
                await session.execute(
                    select(Activity)
                    .where(Activity.subject_id == team["id"], Activity.verb == "team.updated")
                    .order_by(Activity.id)
                )
            )
            .scalars()
            .all()
        )
    assert [u.after for u in updates] == [
        {"name": "Operations", "manager_id": member.agent_id},
        {"description": None, "manager_id": None},
    ]


async def test_soft_delete(tenant: Tenant, smtp_server: Any, app_runtime: Any) -> None:
    member = await add_member(tenant, smtp_server)
    team = await create(tenant, name="Temp", agentIds=[member.agent_id])
    path = f"/v1/teams/{team['id']}"
    assert (await tenant.delete(path)).status_code == 204
    for method, body in (("GET", None), ("PATCH", {"name": "x"}), ("DELETE", None)):
        error(await tenant.request(method, path, json=body), 404, "NOT_FOUND")
    error(await tenant.put(f"{path}/members", json={"agentIds": []}), 404, "NOT_FOUND")
    assert data(await tenant.get("/v1/teams")) == []
    async with app_runtime.db.session(write=False) as session:
        row = await session.get(Team, team["id"])
    assert row is not None and row.deleted_at is not None  # kept for history
    # the agent is untouched
    assert data(await tenant.get(f"/v1/agents/{member.agent_id}"))["isActive"] is True


async def test_set_members(tenant: Tenant, smtp_server: Any, app_runtime: Any) -> None:
    a = await add_member(tenant, smtp_server)
    b = await add_member(tenant, smtp_server)
    team = await create(tenant, name="Crew", agentIds=[a.agent_id])
    path = f"/v1/teams/{team['id']}/members"
    put = data(await tenant.put(path, json={"agentIds": [b.agent_id, a.agent_id, b.agent_id]}))
    assert put["memberIds"] == sorted([a.agent_id, b.agent_id])
    assert data(await tenant.put(path, json={"agentIds": [b.agent_id]}))["memberIds"] == [
        b.agent_id
    ]
    assert data(await tenant.get(f"/v1/teams/{team['id']}"))["memberIds"] == [b.agent_id]
    assert data(await tenant.put(path, json={"agentIds": []}))["memberIds"] == []
    async with app_runtime.db.session(write=False) as session:
        changes = (
            (
                await session.execute(
                    select(Activity)
                    .where(
                        Activity.subject_id == team["id"], Activity.verb == "team.members_changed"
                    )
                    .order_by(Activity.id)
                )
            )
            .scalars()
            .all()
        )
    assert [c.after for c in changes] == [
        {"memberIds": sorted([a.agent_id, b.agent_id])},
        {"memberIds": [b.agent_id]},
        {"memberIds": []},
    ]


async def test_members_must_be_active_agents_of_the_workspace(
    tenant: Tenant, make_tenant: Any, smtp_server: Any
) -> None:
    gone = await add_member(tenant, smtp_server)
    assert (await tenant.delete(f"/v1/agents/{gone.agent_id}")).status_code == 204
    other = await make_tenant()
    team = await create(tenant, name="Strict")
    body = {"agentIds": [tenant.agent_id, other.agent_id, gone.agent_id]}
    failure = error(
        await tenant.put(f"/v1/teams/{team['id']}/members", json=body), 422, "VALIDATION_ERROR"
    )
    assert failure["details"] == [
        {"path": "agentIds.1", "message": f"no active agent {other.agent_id} in this workspace"},
        {"path": "agentIds.2", "message": f"no active agent {gone.agent_id} in this workspace"},
    ]
    assert data(await tenant.get(f"/v1/teams/{team['id']}"))["memberIds"] == []
    error(await tenant.put(f"/v1/teams/{team['id']}/members", json={}), 422, "VALIDATION_ERROR")


async def test_other_workspace_teams_are_404(tenant: Tenant, make_tenant: Any) -> None:
    other = await make_tenant()
    theirs = await create(other, name="Theirs")
    for team_id in (theirs["id"], "bad-id"):
        path = f"/v1/teams/{team_id}"
        error(await tenant.get(path), 404, "NOT_FOUND")
        error(await tenant.patch(path, json={"name": "Mine"}), 404, "NOT_FOUND")
        error(await tenant.delete(path), 404, "NOT_FOUND")
        error(await tenant.put(f"{path}/members", json={"agentIds": []}), 404, "NOT_FOUND")
    assert data(await other.get(f"/v1/teams/{theirs['id']}"))["name"] == "Theirs"


async def test_list_is_sorted_paginated_and_searchable(tenant: Tenant) -> None:
    for name in ("delta", "Alpha", "charlie", "Bravo", "100% club"):
        await create(tenant, name=name)
    names = [t["name"] for t in data(await tenant.get("/v1/teams"))]
    assert names == ["100% club", "Alpha", "Bravo", "charlie", "delta"]
    first = await tenant.get("/v1/teams", params={"limit": 3})
    rest = await tenant.get(
        "/v1/teams", params={"limit": 3, "cursor": first.json()["meta"]["nextCursor"]}
    )
    assert [t["name"] for t in data(first) + data(rest)] == names
    assert rest.json()["meta"]["nextCursor"] is None
    found = data(await tenant.get("/v1/teams", params={"q": "AR"}))
    assert [t["name"] for t in found] == ["charlie"]
    assert [t["name"] for t in data(await tenant.get("/v1/teams", params={"q": "%"}))] == [
        "100% club"
    ]


async def test_list_query_count_does_not_grow_with_teams(
    tenant: Tenant, smtp_server: Any, app_runtime: Any
) -> None:
    member = await add_member(tenant, smtp_server)

    async def statements() -> int:
        seen: list[str] = []

        def count(*args: Any) -> None:
            seen.append(args[2])

        engine = app_runtime.db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            data(await tenant.get("/v1/teams"))
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len([s for s in seen if s.lstrip().upper().startswith("SELECT")])

    await create(tenant, name="One", agentIds=[member.agent_id])
    few = await statements()
    assert few >= 2  # the teams and their members (the caller is checked from the cache)
    for i in range(5):
        await create(tenant, name=f"More {i}", agentIds=[member.agent_id, tenant.agent_id])
    assert await statements() == few
