"""Agents of a workspace: list, read, change role and profile, deactivate, the last admin."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from enque.activity.models import Activity
from enque.agents.models import Agent
from tests.support.api import Tenant, data, error
from tests.support.people import Member, accept, add_member, invite, last_token


async def activities(runtime: Any, workspace_id: str, verb: str) -> list[Activity]:
    async with runtime.db.session(write=False) as session:
        rows = await session.execute(
            select(Activity)
            .where(Activity.workspace_id == workspace_id, Activity.verb == verb)
            .order_by(Activity.id)
        )
        return list(rows.scalars().all())


async def test_list_shows_members_with_roles(tenant: Tenant, smtp_server: Any) -> None:
    manager = await add_member(tenant, smtp_server, "manager", name="Marie Manager")
    agent = await add_member(tenant, smtp_server, "agent", name="alan Agent")
    response = await tenant.get("/v1/agents")
    listed = data(response)
    assert response.json()["meta"] == {"limit": 50, "nextCursor": None}
    assert [a["id"] for a in listed] == [tenant.agent_id, agent.agent_id, manager.agent_id]
    assert {a["id"]: a["role"] for a in listed} == {
        tenant.agent_id: "admin",
        manager.agent_id: "manager",
        agent.agent_id: "agent",
    }
    for item in listed:
        assert not {"passwordHash", "tokenVersion", "signature", "microsoftId"} & item.keys()
    assert "$argon2" not in response.text and "hash" not in response.text.lower()


async def test_list_pages_without_gaps_or_duplicates(tenant: Tenant, smtp_server: Any) -> None:
    for name in ("Bea", "bea", "Cy"):
        await add_member(tenant, smtp_server, name=name)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "includeTotal": "true"}
        if cursor:
            params["cursor"] = cursor
        response = await tenant.get("/v1/agents", params=params)
        seen += [a["id"] for a in data(response)]
        assert response.json()["meta"]["total"] == 4
        cursor = response.json()["meta"]["nextCursor"]
        if cursor is None:
            break
    full = [a["id"] for a in data(await tenant.get("/v1/agents"))]
    assert seen == full and len(set(seen)) == 4
    error(await tenant.get("/v1/agents", params={"cursor": "garbage"}), 422, "VALIDATION_ERROR")


async def test_filters(tenant: Tenant, smtp_server: Any) -> None:
    manager = await add_member(tenant, smtp_server, "manager", name="Percy 100% Sure")
    agent = await add_member(tenant, smtp_server, "agent", name="Under_Score")
    gone = await add_member(tenant, smtp_server, "agent", name="Gone Girl")
    assert (await tenant.delete(f"/v1/agents/{gone.agent_id}")).status_code == 204

    async def ids(**params: Any) -> set[str]:
        return {a["id"] for a in data(await tenant.get("/v1/agents", params=params))}

    assert await ids(q="percy") == {manager.agent_id}
    assert await ids(q="100%") == {manager.agent_id}
    assert await ids(q="r_s") == {agent.agent_id}
    assert await ids(q="_") == {agent.agent_id}  # `_` is literal, not a wildcard
    assert await ids(q=agent.email.split("@")[0].upper()) == {agent.agent_id}
    assert await ids(role="manager") == {manager.agent_id}
    assert await ids(role="agent") == {agent.agent_id, gone.agent_id}
    assert await ids(isActive="false") == {gone.agent_id}
    assert await ids(isActive="true") == {tenant.agent_id, manager.agent_id, agent.agent_id}
    assert await ids(role="agent", isActive="true") == {agent.agent_id}
    error(await tenant.get("/v1/agents", params={"role": "owner"}), 422, "VALIDATION_ERROR")
    error(await tenant.get("/v1/agents", params={"limit": 0}), 422, "VALIDATION_ERROR")


async def test_get_one(tenant: Tenant, make_tenant: Any, smtp_server: Any) -> None:
    member = await add_member(tenant, smtp_server, "manager", name="Ada")
    seen_by_agent = data(await member.request("GET", f"/v1/agents/{tenant.agent_id}"))
    assert seen_by_agent["role"] == "admin" and seen_by_agent["email"] == tenant.email
    other = await make_tenant()
    for agent_id in (other.agent_id, "not-an-id", "01900000-0000-7000-8000-000000000000"):
        error(await tenant.get(f"/v1/agents/{agent_id}"), 404, "NOT_FOUND")


async def test_admin_changes_role_effective_next_request(
    tenant: Tenant, smtp_server: Any, app_runtime: Any
) -> None:
    member = await add_member(tenant, smtp_server, "agent")
    error(await member.request("POST", "/v1/teams", json={"name": "A"}), 403, "FORBIDDEN")
    changed = data(await tenant.patch(f"/v1/agents/{member.agent_id}", json={"role": "manager"}))
    assert changed["role"] == "manager"
    # same token, new role: the role is read from the database on each request
    data(await member.request("POST", "/v1/teams", json={"name": "A"}), 201)
    assert data(await member.request("GET", "/v1/auth/me"))["role"] == "manager"
    data(await tenant.patch(f"/v1/agents/{member.agent_id}", json={"role": "agent"}))
    error(await member.request("POST", "/v1/teams", json={"name": "B"}), 403, "FORBIDDEN")
    changes = await activities(app_runtime, tenant.workspace_id, "agent.role_changed")
    assert [(a.before, a.after, a.actor_id) for a in changes] == [
        ({"role": "agent"}, {"role": "manager"}, tenant.agent_id),
        ({"role": "manager"}, {"role": "agent"}, tenant.agent_id),
    ]


async def test_admin_edits_profile_fields(
    tenant: Tenant, smtp_server: Any, app_runtime: Any
) -> None:
    member = await add_member(tenant, smtp_server)
    body = {"displayName": "Renamed", "jobTitle": "Lead", "phone": "+1 555 0100"}
    changed = data(await tenant.patch(f"/v1/agents/{member.agent_id}", json=body))
    assert (changed["displayName"], changed["jobTitle"], changed["phone"]) == (
        "Renamed",
        "Lead",
        "+1 555 0100",
    )
    cleared = data(await tenant.patch(f"/v1/agents/{member.agent_id}", json={"jobTitle": None}))
    assert cleared["jobTitle"] is None and cleared["phone"] == "+1 555 0100"
    [first, second] = await activities(app_runtime, tenant.workspace_id, "agent.updated")
    assert first.after == {"display_name": "Renamed", "job_title": "Lead", "phone": "+1 555 0100"}
    assert second.before == {"job_title": "Lead"} and second.after == {"job_title": None}


async def test_agent_edits_only_its_own_profile_fields(tenant: Tenant, smtp_server: Any) -> None:
    member = await add_member(tenant, smtp_server, "manager")
    own = f"/v1/agents/{member.agent_id}"
    assert data(await member.request("PATCH", own, json={"jobTitle": "Me"}))["jobTitle"] == "Me"
    for body in ({"role": "admin"}, {"isActive": False}, {"role": "manager", "jobTitle": "x"}):
        error(await member.request("PATCH", own, json=body), 403, "FORBIDDEN")
    other = f"/v1/agents/{tenant.agent_id}"
    error(await member.request("PATCH", other, json={"jobTitle": "Boss"}), 403, "FORBIDDEN")
    error(await member.request("DELETE", other), 403, "FORBIDDEN")
    error(await member.request("DELETE", own), 403, "FORBIDDEN")
    assert data(await tenant.get(own))["role"] == "manager"


async def test_patch_validation(tenant: Tenant, smtp_server: Any) -> None:
    path = f"/v1/agents/{tenant.agent_id}"
    for body in (
        {"role": "owner"},
        {"role": None},
        {"isActive": None},
        {"displayName": ""},
        {"displayName": None},
        {"email": "x@y.z"},
        {"phone": "1" * 65},
    ):
        error(await tenant.patch(path, json=body), 422, "VALIDATION_ERROR")
    error(await tenant.patch("/v1/agents/unknown", json={"jobTitle": "x"}), 404, "NOT_FOUND")


async def test_last_admin_is_kept(tenant: Tenant, smtp_server: Any) -> None:
    own = f"/v1/agents/{tenant.agent_id}"
    error(await tenant.patch(own, json={"role": "manager"}), 409, "CONFLICT")
    error(await tenant.patch(own, json={"isActive": False}), 409, "CONFLICT")
    error(await tenant.delete(own), 409, "CONFLICT")
    second = await add_member(tenant, smtp_server, "admin")
    data(await tenant.patch(own, json={"role": "manager"}))  # another admin exists now
    back = f"/v1/agents/{second.agent_id}"
    error(await second.request("PATCH", back, json={"role": "agent"}), 409, "CONFLICT")
    error(await second.request("DELETE", back), 409, "CONFLICT")
    assert data(await second.request("PATCH", back, json={"role": "admin"}))["role"] == "admin"


async def test_deactivated_admin_does_not_count(tenant: Tenant, smtp_server: Any) -> None:
    second = await add_member(tenant, smtp_server, "admin")
    assert (await tenant.delete(f"/v1/agents/{second.agent_id}")).status_code == 204
    error(
        await tenant.patch(f"/v1/agents/{tenant.agent_id}", json={"role": "agent"}), 409, "CONFLICT"
    )


async def test_deactivate_and_reactivate(
    tenant: Tenant, smtp_server: Any, app_runtime: Any
) -> None:
    team = data(await tenant.post("/v1/teams", json={"name": "Desk"}), 201)
    member = await add_member(tenant, smtp_server, "agent", team_ids=[team["id"]])
    assert (await tenant.delete(f"/v1/agents/{member.agent_id}")).status_code == 204
    error(await member.request("GET", "/v1/auth/me"), 401, "UNAUTHORIZED")
    shown = data(await tenant.get(f"/v1/agents/{member.agent_id}"))
    assert shown["isActive"] is False and shown["role"] == "agent"
    # history stays: the agent row and team membership are kept
    assert data(await tenant.get(f"/v1/teams/{team['id']}"))["memberIds"] == [member.agent_id]
    async with app_runtime.db.session(write=False) as session:
        assert await session.get(Agent, member.agent_id) is not None

    body = {"isActive": True}
    assert data(await tenant.patch(f"/v1/agents/{member.agent_id}", json=body))["isActive"]
    error(await member.request("GET", "/v1/auth/me"), 401, "UNAUTHORIZED")  # old token stays dead
    login = {"email": member.email, "password": member.password}
    fresh = data(await tenant.http.post("/v1/auth/login", json=login))["token"]
    assert (await tenant.get("/v1/auth/me", token=fresh)).status_code == 200
    verbs = [
        a.verb
        for verb in ("agent.deactivated", "agent.reactivated")
        for a in await activities(app_runtime, tenant.workspace_id, verb)
    ]
    assert verbs == ["agent.deactivated", "agent.reactivated"]


async def test_deactivation_is_per_workspace(
    tenant: Tenant, make_tenant: Any, smtp_server: Any
) -> None:
    other = await make_tenant()
    await invite(tenant, other.email)
    data(await accept(tenant, await last_token(smtp_server, other.email), password=other.password))
    assert (await tenant.delete(f"/v1/agents/{other.agent_id}")).status_code == 204
    login = {"email": other.email, "password": other.password}
    signed = data(await other.http.post("/v1/auth/login", json=login))
    assert signed["workspace"]["id"] == other.workspace_id  # still admin of its own workspace
    assert data(await other.get("/v1/auth/me", token=signed["token"]))["role"] == "admin"


async def test_member_fixture_roles(tenant: Tenant, smtp_server: Any) -> None:
    """The helper used across the suite makes members of the asked role."""
    member: Member = await add_member(tenant, smtp_server, "manager")
    assert data(await member.request("GET", "/v1/auth/me"))["role"] == "manager"


async def test_two_admins_demoting_each_other_at_once_leave_one(
    tenant: Tenant, smtp_server: Any
) -> None:
    second = await add_member(tenant, smtp_server, "admin")
    results = await asyncio.gather(
        tenant.patch(f"/v1/agents/{second.agent_id}", json={"role": "agent"}),
        second.request("PATCH", f"/v1/agents/{tenant.agent_id}", json={"role": "agent"}),
    )
    # the loser finds itself no longer admin (403) or the other the last admin (409)
    statuses = [r.status_code for r in results]
    assert sorted(statuses) in ([200, 403], [200, 409])
    winner = tenant.token if statuses[0] == 200 else second.token
    admins = data(await tenant.get("/v1/agents", params={"role": "admin"}, token=winner))
    assert len(admins) == 1
