"""Workspaces: the caller's list, reading, settings and soft deletion."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from enque.activity.models import Activity
from enque.agents.models import Agent
from enque.workspaces.models import Workspace
from tests.support.api import Tenant, data, error
from tests.support.people import accept, add_member, invite, last_token


async def join(tenant: Tenant, other: Tenant, smtp_server: Any, role: str = "agent") -> str:
    """`other`'s admin joins `tenant`'s workspace; returns a token for it."""
    count = len(smtp_server.to(other.email)) + 1
    await invite(tenant, other.email, role)
    token = await last_token(smtp_server, other.email, count)
    return str(data(await accept(tenant, token, password=other.password))["token"])


async def test_list_mine(tenant: Tenant, make_tenant: Any, smtp_server: Any) -> None:
    other = await make_tenant()
    await join(tenant, other, smtp_server, "manager")
    mine = data(await other.get("/v1/workspaces"))
    assert {(w["id"], w["role"]) for w in mine} == {
        (other.workspace_id, "admin"),
        (tenant.workspace_id, "manager"),
    }
    first = await other.get("/v1/workspaces", params={"limit": 1})
    assert len(data(first)) == 1 and first.json()["meta"]["nextCursor"]
    assert [w["id"] for w in data(await tenant.get("/v1/workspaces"))] == [tenant.workspace_id]


async def test_list_leaves_out_deactivated_and_deleted(
    tenant: Tenant, make_tenant: Any, smtp_server: Any
) -> None:
    other, third = await make_tenant(), await make_tenant()
    await join(tenant, other, smtp_server)
    assert (await tenant.delete(f"/v1/agents/{other.agent_id}")).status_code == 204
    login = {"email": other.email, "password": other.password}
    token = data(await other.http.post("/v1/auth/login", json=login))["token"]
    assert [w["id"] for w in data(await other.get("/v1/workspaces", token=token))] == [
        other.workspace_id
    ]
    await join(third, other, smtp_server)
    assert (await third.delete(f"/v1/workspaces/{third.workspace_id}")).status_code == 204
    assert [w["id"] for w in data(await other.get("/v1/workspaces", token=token))] == [
        other.workspace_id
    ]


async def test_get_own_only(tenant: Tenant, make_tenant: Any, smtp_server: Any) -> None:
    own = data(await tenant.get(f"/v1/workspaces/{tenant.workspace_id}"))
    assert own["id"] == tenant.workspace_id and own["subdomain"] == tenant.subdomain
    assert own["timezone"] == "UTC" and own["settings"] == {}
    other = await make_tenant()
    member_token = await join(tenant, other, smtp_server)
    assert data(await tenant.get(f"/v1/workspaces/{tenant.workspace_id}", token=member_token))
    # a workspace the caller belongs to, but not the one its token is for: 404
    error(
        await tenant.get(f"/v1/workspaces/{other.workspace_id}", token=member_token),
        404,
        "NOT_FOUND",
    )
    for bad in (other.workspace_id, "nope"):
        error(await tenant.get(f"/v1/workspaces/{bad}"), 404, "NOT_FOUND")


async def test_patch(tenant: Tenant, app_runtime: Any) -> None:
    path = f"/v1/workspaces/{tenant.workspace_id}"
    body = {"name": "Acme Support", "timezone": "Europe/Paris", "settings": {"a": 1, "b": [2]}}
    changed = data(await tenant.patch(path, json=body))
    assert (changed["name"], changed["timezone"]) == ("Acme Support", "Europe/Paris")
    assert changed["settings"] == {"a": 1, "b": [2]}
    merged = data(await tenant.patch(path, json={"settings": {"a": None, "c": {"d": True}}}))
    assert merged["settings"] == {"b": [2], "c": {"d": True}}
    assert data(await tenant.patch(path, json={})) == merged
    assert data(await tenant.get(path)) == merged
    async with app_runtime.db.session(write=False) as session:
        rows = (
            (
                await session.execute(
                    select(Activity)
                    .where(
                        Activity.subject_id == tenant.workspace_id,
                        Activity.verb == "workspace.updated",
                    )
                    .order_by(Activity.id)
                )
            )
            .scalars()
            .all()
        )
    assert [r.before for r in rows] == [
        {"name": f"Workspace {tenant.subdomain}", "timezone": "UTC", "settings": {}},
        {"settings": {"a": 1, "b": [2]}},
    ]


async def test_patch_validation(tenant: Tenant, make_tenant: Any) -> None:
    path = f"/v1/workspaces/{tenant.workspace_id}"
    for body in (
        {"timezone": "Mars/Olympus"},
        {"timezone": "../../etc/passwd"},
        {"name": ""},
        {"settings": [1]},
        {"settings": None},
        {"timezone": None},
        {"name": None},
        {"subdomain": "other"},
    ):
        error(await tenant.patch(path, json=body), 422, "VALIDATION_ERROR")
    failure = error(await tenant.patch(path, json={"timezone": "Nowhere"}), 422, "VALIDATION_ERROR")
    assert failure["details"][0]["path"] == "timezone"
    other = await make_tenant()
    error(
        await tenant.patch(f"/v1/workspaces/{other.workspace_id}", json={"name": "x"}),
        404,
        "NOT_FOUND",
    )
    assert data(await other.get(f"/v1/workspaces/{other.workspace_id}"))["name"] != "x"


async def test_delete_is_soft(tenant: Tenant, smtp_server: Any, app_runtime: Any) -> None:
    member = await add_member(tenant, smtp_server)
    assert (await tenant.delete(f"/v1/workspaces/{tenant.workspace_id}")).status_code == 204
    error(await tenant.get("/v1/auth/me"), 401, "UNAUTHORIZED")
    error(await member.request("GET", "/v1/agents"), 401, "UNAUTHORIZED")
    login = {"email": tenant.email, "password": tenant.password}
    error(await tenant.http.post("/v1/auth/login", json=login), 401, "UNAUTHORIZED")
    async with app_runtime.db.session(write=False) as session:
        workspace = await session.get(Workspace, tenant.workspace_id)
        agent = await session.get(Agent, member.agent_id)
        verbs = (
            (
                await session.execute(
                    select(Activity.verb).where(Activity.workspace_id == tenant.workspace_id)
                )
            )
            .scalars()
            .all()
        )
    assert workspace is not None and workspace.deleted_at is not None
    assert agent is not None
    assert "workspace.deleted" in verbs


async def test_delete_keeps_the_agents_other_workspaces(
    tenant: Tenant, make_tenant: Any, smtp_server: Any
) -> None:
    other = await make_tenant()
    await join(tenant, other, smtp_server)
    assert (await tenant.delete(f"/v1/workspaces/{tenant.workspace_id}")).status_code == 204
    assert (await other.get("/v1/auth/me")).status_code == 200
    login = {"email": other.email, "password": other.password}
    signed = data(await other.http.post("/v1/auth/login", json=login))
    assert signed["workspace"]["id"] == other.workspace_id
    switch = {"workspaceId": tenant.workspace_id}
    error(await other.post("/v1/auth/switch-workspace", json=switch), 404, "NOT_FOUND")


async def test_delete_other_or_unknown_is_404(tenant: Tenant, make_tenant: Any) -> None:
    other = await make_tenant()
    for bad in (other.workspace_id, "nope"):
        error(await tenant.delete(f"/v1/workspaces/{bad}"), 404, "NOT_FOUND")
    assert (await other.get("/v1/auth/me")).status_code == 200
