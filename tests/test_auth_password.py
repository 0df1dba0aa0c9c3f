"""Forgotten passwords: the mailed link, single use, one hour, every old token revoked."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from enque.activity.models import Activity
from enque.agents.models import PasswordReset
from enque.core.db import now
from enque.core.security import token_hash
from tests.support.api import Tenant, data, error, unique
from tests.support.people import add_member, last_token

NEW_PASSWORD = "a brand new passphrase"


async def forgot(tenant: Tenant, email: str) -> Any:
    return await tenant.http.post("/v1/auth/password/forgot", json={"email": email})


async def reset(tenant: Tenant, token: str, password: str = NEW_PASSWORD) -> Any:
    body = {"token": token, "password": password}
    return await tenant.http.post("/v1/auth/password/reset", json=body)


async def login(tenant: Tenant, password: str) -> Any:
    body = {"email": tenant.email, "password": password}
    return await tenant.http.post("/v1/auth/login", json=body)


async def test_reset_by_mailed_link(tenant: Tenant, smtp_server: Any, app_runtime: Any) -> None:
    response = await forgot(tenant, tenant.email.upper())
    assert response.status_code == 202
    assert response.json() == {"success": True, "data": None}
    [mail] = await smtp_server.wait_for(tenant.email)
    assert mail.subject == "Reset your Enque password"
    html = mail.message.get_body(("html",)).get_content()
    token = await last_token(smtp_server, tenant.email)
    link = f"http://enque.test/reset-password?token={token}"
    assert link in mail.text() and f'href="{link}"' in html

    async with app_runtime.db.session(write=False) as session:
        stored = (await session.execute(select(PasswordReset))).scalars().all()
    mine = [r for r in stored if r.token_hash == token_hash(token)]
    assert len(mine) == 1 and all(token not in (r.token_hash, r.id) for r in stored)

    assert (await reset(tenant, token)).status_code == 204
    error(await tenant.get("/v1/auth/me"), 401, "UNAUTHORIZED")  # old token revoked
    error(await login(tenant, tenant.password), 401, "UNAUTHORIZED")
    fresh = data(await login(tenant, NEW_PASSWORD))
    assert data(await tenant.get("/v1/auth/me", token=fresh["token"]))["role"] == "admin"

    async with app_runtime.db.session(write=False) as session:
        verbs = (
            (
                await session.execute(
                    select(Activity.verb).where(
                        Activity.workspace_id == tenant.workspace_id,
                        Activity.subject_id == tenant.agent_id,
                    )
                )
            )
            .scalars()
            .all()
        )
    assert {"agent.password_reset_requested", "agent.password_reset"} <= set(verbs)


async def test_token_is_single_use(tenant: Tenant, smtp_server: Any) -> None:
    await forgot(tenant, tenant.email)
    token = await last_token(smtp_server, tenant.email)
    assert (await reset(tenant, token)).status_code == 204
    failure = error(await reset(tenant, token, "yet another password"), 400, "BAD_REQUEST")
    assert failure["details"] == [{"path": "token", "message": "invalid"}]
    data(await login(tenant, NEW_PASSWORD))


async def test_expired_token_is_refused(tenant: Tenant, smtp_server: Any, app_runtime: Any) -> None:
    await forgot(tenant, tenant.email)
    token = await last_token(smtp_server, tenant.email)
    async with app_runtime.db.transaction() as session:
        await session.execute(
            update(PasswordReset)
            .where(PasswordReset.token_hash == token_hash(token))
            .values(expires_at=now() - 1)
        )
    error(await reset(tenant, token), 400, "BAD_REQUEST")
    data(await login(tenant, tenant.password))  # nothing changed


async def test_link_lives_one_hour(tenant: Tenant, smtp_server: Any, app_runtime: Any) -> None:
    await forgot(tenant, tenant.email)
    token = await last_token(smtp_server, tenant.email)
    async with app_runtime.db.session(write=False) as session:
        stored = (
            await session.execute(
                select(PasswordReset).where(PasswordReset.token_hash == token_hash(token))
            )
        ).scalar_one()
    assert stored.expires_at - stored.created_at == 3600


async def test_using_one_link_voids_the_others(tenant: Tenant, smtp_server: Any) -> None:
    await forgot(tenant, tenant.email)
    first = await last_token(smtp_server, tenant.email, 1)
    await forgot(tenant, tenant.email)
    second = await last_token(smtp_server, tenant.email, 2)
    assert first != second
    assert (await reset(tenant, second)).status_code == 204
    error(await reset(tenant, first), 400, "BAD_REQUEST")


async def test_unknown_email_answers_the_same_and_sends_nothing(
    tenant: Tenant, smtp_server: Any
) -> None:
    stranger = f"{unique('nobody')}@example.com"
    unknown = await forgot(tenant, stranger)
    known = await forgot(tenant, tenant.email)
    assert unknown.status_code == known.status_code == 202
    assert unknown.json() == known.json()
    await smtp_server.wait_for(tenant.email)
    assert smtp_server.to(stranger) == []


async def test_deactivated_agent_gets_no_link(tenant: Tenant, smtp_server: Any) -> None:
    member = await add_member(tenant, smtp_server)
    assert (await tenant.delete(f"/v1/agents/{member.agent_id}")).status_code == 204
    assert (await forgot(tenant, member.email)).status_code == 202
    await forgot(tenant, tenant.email)  # sent after the member's request: marks the moment
    await smtp_server.wait_for(tenant.email)
    assert len(smtp_server.to(member.email)) == 1  # only the invitation


async def test_bad_inputs(tenant: Tenant) -> None:
    error(await reset(tenant, "not-a-token"), 400, "BAD_REQUEST")
    error(await reset(tenant, "x", "short"), 422, "VALIDATION_ERROR")
    error(
        await tenant.http.post("/v1/auth/password/reset", json={"token": "x"}),
        422,
        "VALIDATION_ERROR",
    )
    error(await tenant.http.post("/v1/auth/password/forgot", json={}), 422, "VALIDATION_ERROR")
    error(
        await tenant.http.post("/v1/auth/password/forgot", json={"email": "a@b.c", "x": 1}),
        422,
        "VALIDATION_ERROR",
    )
