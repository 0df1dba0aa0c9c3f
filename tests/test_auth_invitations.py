"""Invitations: mailed, listed, revoked, accepted once; new and existing agents."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select, update

from enque.activity.models import Activity
from enque.agents.models import AgentInvitation
from enque.core.db import now
from enque.core.security import token_hash
from tests.support.api import PASSWORD, Tenant, data, error, unique
from tests.support.people import accept, add_member, invite, last_token


def new_email(prefix: str = "invitee") -> str:
    return f"{unique(prefix)}@example.com"


async def verbs(runtime: Any, workspace_id: str) -> list[str]:
    async with runtime.db.session(write=False) as session:
        rows = await session.execute(
            select(Activity.verb).where(Activity.workspace_id == workspace_id).order_by(Activity.id)
        )
        return list(rows.scalars().all())


async def test_invite_mail_accept_sign_in(
    tenant: Tenant, smtp_server: Any, app_runtime: Any
) -> None:
    team = data(await tenant.post("/v1/teams", json={"name": "Tier 2"}), 201)
    email = new_email()
    invitation = await invite(tenant, email, "manager", [team["id"]])
    assert invitation["email"] == email and invitation["role"] == "manager"
    assert invitation["teamIds"] == [team["id"]]
    assert invitation["invitedById"] == tenant.agent_id
    assert invitation["acceptedAt"] is None and invitation["revokedAt"] is None
    assert invitation["expiresAt"] - invitation["createdAt"] == 7 * 86400
    assert "token" not in invitation and "tokenHash" not in invitation

    [mail] = await smtp_server.wait_for(email)
    assert f"Workspace {tenant.subdomain}" in mail.subject
    token = await last_token(smtp_server, email)
    assert f"http://enque.test/accept-invitation?token={token}" in mail.text()

    pending = data(await tenant.get("/v1/agents/invitations"))
    assert [i["id"] for i in pending] == [invitation["id"]]
    assert token not in (await tenant.get("/v1/agents/invitations")).text

    signed = data(await accept(tenant, token, display_name="  Grace Hopper "))
    assert signed["agent"]["email"] == email
    assert signed["agent"]["displayName"] == "Grace Hopper"
    assert signed["agent"]["role"] == "manager"
    assert signed["workspace"]["id"] == tenant.workspace_id
    assert signed["expiresAt"] > now()
    me = data(await tenant.get("/v1/auth/me", token=signed["token"]))
    assert me["role"] == "manager" and me["agent"]["id"] == signed["agent"]["id"]
    assert data(await tenant.get(f"/v1/teams/{team['id']}"))["memberIds"] == [signed["agent"]["id"]]
    assert data(await tenant.get("/v1/agents/invitations")) == []
    assert {"agent.invited", "agent.joined", "agent.invitation_accepted"} <= set(
        await verbs(app_runtime, tenant.workspace_id)
    )
    # the new agent signs in with the password it chose
    body = {"email": email, "password": PASSWORD}
    assert (await tenant.http.post("/v1/auth/login", json=body)).status_code == 200


async def test_token_is_single_use(tenant: Tenant, smtp_server: Any) -> None:
    email = new_email()
    await invite(tenant, email)
    token = await last_token(smtp_server, email)
    data(await accept(tenant, token))
    failure = error(await accept(tenant, token), 400, "BAD_REQUEST")
    assert failure["details"] == [{"path": "token", "message": "invalid"}]


async def test_unknown_token_is_refused(tenant: Tenant) -> None:
    error(await accept(tenant, "no-such-token"), 400, "BAD_REQUEST")


async def test_expired_token_is_refused(tenant: Tenant, smtp_server: Any, app_runtime: Any) -> None:
    email = new_email()
    await invite(tenant, email)
    token = await last_token(smtp_server, email)
    async with app_runtime.db.transaction() as session:
        await session.execute(
            update(AgentInvitation)
            .where(AgentInvitation.token_hash == token_hash(token))
            .values(expires_at=now() - 1)
        )
    error(await accept(tenant, token), 400, "BAD_REQUEST")
    assert data(await tenant.get("/v1/agents/invitations")) == []  # expired is not pending


async def test_revoked_token_is_refused(tenant: Tenant, smtp_server: Any, app_runtime: Any) -> None:
    email = new_email()
    invitation = await invite(tenant, email)
    token = await last_token(smtp_server, email)
    assert (await tenant.delete(f"/v1/agents/invitations/{invitation['id']}")).status_code == 204
    error(await accept(tenant, token), 400, "BAD_REQUEST")
    error(await tenant.delete(f"/v1/agents/invitations/{invitation['id']}"), 404, "NOT_FOUND")
    assert data(await tenant.get("/v1/agents/invitations")) == []
    assert "agent.invitation_revoked" in await verbs(app_runtime, tenant.workspace_id)


async def test_accepted_invitation_cannot_be_revoked(tenant: Tenant, smtp_server: Any) -> None:
    email = new_email()
    invitation = await invite(tenant, email)
    data(await accept(tenant, await last_token(smtp_server, email)))
    error(await tenant.delete(f"/v1/agents/invitations/{invitation['id']}"), 409, "CONFLICT")


async def test_revoke_unknown_or_malformed_is_404(tenant: Tenant, make_tenant: Any) -> None:
    other = await make_tenant()
    foreign = await invite(other, new_email())
    for invitation_id in ("nope", "01900000-0000-7000-8000-000000000000", foreign["id"]):
        response = await tenant.delete(f"/v1/agents/invitations/{invitation_id}")
        error(response, 404, "NOT_FOUND")


async def test_inviting_again_replaces_the_pending_invitation(
    tenant: Tenant, smtp_server: Any
) -> None:
    email = new_email()
    first = await invite(tenant, email)
    old_token = await last_token(smtp_server, email, 1)
    second = await invite(tenant, email.upper().replace("@EXAMPLE.COM", "@example.com"), "manager")
    new_token = await last_token(smtp_server, email, 2)
    pending = data(await tenant.get("/v1/agents/invitations"))
    assert [i["id"] for i in pending] == [second["id"]] and first["id"] != second["id"]
    error(await accept(tenant, old_token), 400, "BAD_REQUEST")
    assert data(await accept(tenant, new_token))["agent"]["role"] == "manager"


async def test_pending_list_is_paginated(tenant: Tenant) -> None:
    created = [(await invite(tenant, new_email()))["id"] for _ in range(3)]
    first = await tenant.get("/v1/agents/invitations", params={"limit": 2})
    second = await tenant.get(
        "/v1/agents/invitations",
        params={"limit": 2, "cursor": first.json()["meta"]["nextCursor"]},
    )
    assert first.json()["meta"]["nextCursor"] and second.json()["meta"]["nextCursor"] is None
    seen = [i["id"] for i in data(first) + data(second)]
    assert seen == list(reversed(created))


async def test_cannot_invite_a_member(tenant: Tenant, smtp_server: Any) -> None:
    member = await add_member(tenant, smtp_server)
    for email in (tenant.email, member.email.upper().replace("@EXAMPLE.COM", "@example.com")):
        failure = error(
            await tenant.post("/v1/agents/invitations", json={"email": email}), 409, "CONFLICT"
        )
        assert failure["details"][0]["path"] == "email"


async def test_invitation_validation(tenant: Tenant, make_tenant: Any) -> None:
    other = await make_tenant()
    foreign_team = data(await other.post("/v1/teams", json={"name": "Theirs"}), 201)["id"]
    mine = data(await tenant.post("/v1/teams", json={"name": "Mine"}), 201)["id"]
    body = {"email": new_email(), "teamIds": [mine, foreign_team, "bogus"]}
    failure = error(await tenant.post("/v1/agents/invitations", json=body), 422, "VALIDATION_ERROR")
    assert [d["path"] for d in failure["details"]] == ["teamIds.1", "teamIds.2"]
    assert foreign_team in failure["details"][0]["message"]
    for bad in (
        {"email": "not-an-email"},
        {"email": new_email(), "role": "owner"},
        {"email": new_email(), "extra": True},
        {},
    ):
        error(await tenant.post("/v1/agents/invitations", json=bad), 422, "VALIDATION_ERROR")
    assert data(await tenant.get("/v1/agents/invitations")) == []


async def test_default_role_is_agent(tenant: Tenant, smtp_server: Any) -> None:
    email = new_email()
    data(await tenant.post("/v1/agents/invitations", json={"email": email}), 201)
    signed = data(await accept(tenant, await last_token(smtp_server, email)))
    assert signed["agent"]["role"] == "agent"


async def test_new_agent_needs_a_name_and_a_valid_password(
    tenant: Tenant, smtp_server: Any
) -> None:
    email = new_email()
    await invite(tenant, email)
    token = await last_token(smtp_server, email)
    failure = error(await accept(tenant, token, display_name=None), 422, "VALIDATION_ERROR")
    assert failure["details"][0]["path"] == "displayName"
    error(await accept(tenant, token, password="short"), 422, "VALIDATION_ERROR")
    data(await accept(tenant, token))  # the failed tries did not use the invitation


async def test_existing_agent_joins_with_its_own_password(
    tenant: Tenant, make_tenant: Any, smtp_server: Any, app_runtime: Any
) -> None:
    other = await make_tenant()
    await invite(tenant, other.email, "manager")
    token = await last_token(smtp_server, other.email)
    wrong = error(await accept(tenant, token, password="not the password"), 401, "UNAUTHORIZED")
    assert "password" in wrong["message"]
    signed = data(await accept(tenant, token, password=other.password, display_name=None))
    assert signed["agent"]["id"] == other.agent_id
    assert signed["agent"]["displayName"].startswith("Admin ")  # name unchanged
    assert signed["workspace"]["id"] == tenant.workspace_id
    assert signed["agent"]["role"] == "manager"
    # the old workspace still works, and switching between the two too
    assert data(await other.get("/v1/auth/me"))["workspace"]["id"] == other.workspace_id
    switched = data(
        await other.post("/v1/auth/switch-workspace", json={"workspaceId": tenant.workspace_id})
    )
    assert switched["agent"]["role"] == "manager"
    mine = data(await other.get("/v1/workspaces"))
    assert {w["id"]: w["role"] for w in mine} == {
        other.workspace_id: "admin",
        tenant.workspace_id: "manager",
    }


async def test_deactivated_agent_can_be_invited_back(tenant: Tenant, smtp_server: Any) -> None:
    member = await add_member(tenant, smtp_server)
    assert (await tenant.delete(f"/v1/agents/{member.agent_id}")).status_code == 204
    await invite(tenant, member.email, "manager")
    token = await last_token(smtp_server, member.email, 2)
    signed = data(await accept(tenant, token, password=member.password))
    assert signed["agent"]["id"] == member.agent_id and signed["agent"]["role"] == "manager"
    agent = data(await tenant.get(f"/v1/agents/{member.agent_id}"))
    assert agent["isActive"] is True and agent["role"] == "manager"


async def test_invitation_to_a_deleted_workspace_is_refused(
    tenant: Tenant, smtp_server: Any
) -> None:
    email = new_email()
    await invite(tenant, email)
    token = await last_token(smtp_server, email)
    assert (await tenant.delete(f"/v1/workspaces/{tenant.workspace_id}")).status_code == 204
    error(await accept(tenant, token), 400, "BAD_REQUEST")


async def test_deleted_team_is_skipped_on_accept(tenant: Tenant, smtp_server: Any) -> None:
    kept = data(await tenant.post("/v1/teams", json={"name": "Kept"}), 201)["id"]
    gone = data(await tenant.post("/v1/teams", json={"name": "Gone"}), 201)["id"]
    email = new_email()
    await invite(tenant, email, "agent", [kept, gone])
    assert (await tenant.delete(f"/v1/teams/{gone}")).status_code == 204
    signed = data(await accept(tenant, await last_token(smtp_server, email)))
    assert data(await tenant.get(f"/v1/teams/{kept}"))["memberIds"] == [signed["agent"]["id"]]


async def test_concurrent_accepts_use_the_token_once(tenant: Tenant, smtp_server: Any) -> None:
    email = new_email()
    await invite(tenant, email)
    token = await last_token(smtp_server, email)
    results = await asyncio.gather(*(accept(tenant, token) for _ in range(3)))
    assert sorted(r.status_code for r in results) == [200, 400, 400]
    members = [a for a in data(await tenant.get("/v1/agents")) if a["email"] == email]
    assert len(members) == 1
