"""API tokens: shown once, stored hashed, scoped per area, revocable, last use recorded."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from enque.apitokens.models import ApiToken
from enque.core.security import token_hash
from tests.support.api import Tenant, data, error
from tests.support.people import add_member


async def make_token(tenant: Tenant, *scopes: str, name: str = "CRM sync") -> dict[str, Any]:
    return data(
        await tenant.post("/v1/api-tokens", json={"name": name, "scopes": list(scopes)}), 201
    )


async def test_the_secret_is_shown_once_and_stored_hashed(tenant: Tenant, app_runtime: Any) -> None:
    made = await make_token(tenant, "teams:read")
    secret = made["token"]
    assert secret.startswith("enq_") and len(secret) > 40
    assert made["prefix"] == secret[:12] and made["scopes"] == ["teams:read"]
    assert made["createdById"] == tenant.agent_id and made["lastUsedAt"] is None
    listed = data(await tenant.get("/v1/api-tokens"))
    assert [t["id"] for t in listed] == [made["id"]]
    assert "token" not in listed[0] and secret not in str(listed)
    async with app_runtime.db.session(write=False) as session:
        row = (
            await session.execute(select(ApiToken).where(ApiToken.id == made["id"]))
        ).scalar_one()
    assert row.token_hash == token_hash(secret) and secret not in str(row.__dict__)


async def test_scopes_limit_areas_and_writes(tenant: Tenant) -> None:
    reader = (await make_token(tenant, "teams:read"))["token"]
    writer = (await make_token(tenant, "teams:write", "tickets:read"))["token"]
    assert data(await tenant.get("/v1/teams", token=reader)) == []
    error(await tenant.post("/v1/teams", token=reader, json={"name": "x"}), 403, "FORBIDDEN")
    error(await tenant.get("/v1/tickets", token=reader), 403, "FORBIDDEN")
    team = data(await tenant.post("/v1/teams", token=writer, json={"name": "Ops"}), 201)
    assert [t["id"] for t in data(await tenant.get("/v1/teams", token=writer))] == [team["id"]]
    assert data(await tenant.get("/v1/tickets", token=writer)) == []
    error(await tenant.post("/v1/tickets", token=writer, json={}), 403, "FORBIDDEN")


async def test_tokens_never_reach_sign_in_or_token_management(tenant: Tenant) -> None:
    everything = (await make_token(tenant, "*:write"))["token"]
    assert data(await tenant.get("/v1/teams", token=everything)) == []
    error(await tenant.get("/v1/auth/me", token=everything), 403, "FORBIDDEN")
    error(await tenant.get("/v1/api-tokens", token=everything), 403, "FORBIDDEN")
    body = {"name": "escalate", "scopes": ["*:write"]}
    error(await tenant.post("/v1/api-tokens", token=everything, json=body), 403, "FORBIDDEN")


async def test_revoked_and_unknown_tokens_are_refused(tenant: Tenant) -> None:
    made = await make_token(tenant, "teams:read")
    assert data(await tenant.get("/v1/teams", token=made["token"])) == []
    response = await tenant.delete(f"/v1/api-tokens/{made['id']}")
    assert response.status_code == 204
    error(await tenant.get("/v1/teams", token=made["token"]), 401, "UNAUTHORIZED")
    error(await tenant.get("/v1/teams", token=made["token"][:-1] + "x"), 401, "UNAUTHORIZED")
    [listed] = data(await tenant.get("/v1/api-tokens"))
    assert listed["revokedAt"] is not None
    assert (await tenant.delete(f"/v1/api-tokens/{made['id']}")).status_code == 204


async def test_last_use_is_recorded(tenant: Tenant) -> None:
    made = await make_token(tenant, "teams:read")
    await tenant.get("/v1/teams", token=made["token"])
    for _ in range(100):
        [listed] = data(await tenant.get("/v1/api-tokens"))
        if listed["lastUsedAt"] is not None:
            break
        await asyncio.sleep(0.02)
    assert listed["lastUsedAt"] is not None


async def test_the_token_acts_as_its_creator_and_stops_with_them(
    tenant: Tenant, smtp_server: Any
) -> None:
    member = await add_member(tenant, smtp_server, role="admin")
    response = await member.request(
        "POST", "/v1/api-tokens", json={"name": "m", "scopes": ["teams:write"]}
    )
    made = data(response, 201)
    team = data(await tenant.post("/v1/teams", token=made["token"], json={"name": "T"}), 201)
    assert team["id"]
    deactivate = await tenant.delete(f"/v1/agents/{member.agent_id}")
    assert deactivate.status_code == 204, deactivate.text
    error(await tenant.get("/v1/teams", token=made["token"]), 401, "UNAUTHORIZED")


async def test_only_admins_manage_tokens_and_scopes_are_checked(
    tenant: Tenant, smtp_server: Any
) -> None:
    agent = await add_member(tenant, smtp_server)
    body = {"name": "x", "scopes": ["teams:read"]}
    error(await agent.request("POST", "/v1/api-tokens", json=body), 403, "FORBIDDEN")
    failure = error(
        await tenant.post(
            "/v1/api-tokens",
            json={"name": "x", "scopes": ["teams:read", "nope:read", "teams:admin"]},
        ),
        422,
        "VALIDATION_ERROR",
    )
    assert [d["path"] for d in failure["details"]] == ["scopes.1", "scopes.2"]
