"""JWT strictness, revocation paths, legacy password hashes and login answers."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import bcrypt
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select, update

from enque.agents.models import Agent
from enque.core.db import new_id, now
from tests.support.api import Tenant, data, error, unique
from tests.support.people import add_member


def claims(tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    issued = now()
    return {
        "sub": tenant.agent_id,
        "wid": tenant.workspace_id,
        "role": "admin",
        "jti": new_id(),
        "iat": issued,
        "exp": issued + 600,
        "tv": 0,
        **overrides,
    }


def secret(runtime: Any) -> str:
    return runtime.settings.resolved_secret_key()


def b64(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")


async def refused(tenant: Tenant, token: str) -> None:
    error(await tenant.get("/v1/auth/me", token=token), 401, "UNAUTHORIZED")


async def test_a_well_formed_token_is_accepted(tenant: Tenant, app_runtime: Any) -> None:
    """The forged-token tests below differ from this one only in what they break."""
    token = jwt.encode(claims(tenant), secret(app_runtime), algorithm="HS256")
    assert data(await tenant.get("/v1/auth/me", token=token))["agent"]["id"] == tenant.agent_id


async def test_other_hmac_algorithm_is_refused(tenant: Tenant, app_runtime: Any) -> None:
    await refused(tenant, jwt.encode(claims(tenant), secret(app_runtime), algorithm="HS512"))


async def test_rs256_token_is_refused(tenant: Tenant) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    await refused(tenant, jwt.encode(claims(tenant), pem, algorithm="RS256"))


async def test_alg_none_is_refused(tenant: Tenant) -> None:
    for alg in ("none", "None", "NONE"):
        unsigned = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims(tenant))}."
        await refused(tenant, unsigned)


async def test_bad_signature_is_refused(tenant: Tenant, app_runtime: Any) -> None:
    await refused(tenant, jwt.encode(claims(tenant), "another secret" * 3, algorithm="HS256"))
    header, payload, signature = tenant.token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged["role"] = "admin"
    forged["wid"] = new_id()
    await refused(tenant, f"{header}.{b64(forged)}.{signature}")


async def test_expired_token_is_refused(tenant: Tenant, app_runtime: Any) -> None:
    expired = claims(tenant, iat=now() - 7200, exp=now() - 60)
    await refused(tenant, jwt.encode(expired, secret(app_runtime), algorithm="HS256"))


async def test_missing_claims_are_refused(tenant: Tenant, app_runtime: Any) -> None:
    for claim in ("sub", "wid", "jti", "exp"):
        partial = claims(tenant)
        del partial[claim]
        await refused(tenant, jwt.encode(partial, secret(app_runtime), algorithm="HS256"))


async def test_malformed_headers_are_refused(tenant: Tenant) -> None:
    for header in ("", "Bearer", "Bearer ", "Basic abc", f"Token {tenant.token}", "Bearer a.b.c"):
        response = await tenant.http.get("/v1/auth/me", headers={"Authorization": header})
        error(response, 401, "UNAUTHORIZED")
    error(await tenant.http.get("/v1/auth/me"), 401, "UNAUTHORIZED")


async def test_logout_revokes_only_that_token(tenant: Tenant) -> None:
    body = {"email": tenant.email, "password": tenant.password}
    second = data(await tenant.http.post("/v1/auth/login", json=body))["token"]
    assert (await tenant.post("/v1/auth/logout")).status_code == 204
    await refused(tenant, tenant.token)
    assert (await tenant.get("/v1/auth/me", token=second)).status_code == 200


async def test_deactivated_agent_is_refused(tenant: Tenant, smtp_server: Any) -> None:
    member = await add_member(tenant, smtp_server)
    assert (await tenant.delete(f"/v1/agents/{member.agent_id}")).status_code == 204
    await refused(tenant, member.token)


async def test_deleted_workspace_is_refused(tenant: Tenant, smtp_server: Any) -> None:
    member = await add_member(tenant, smtp_server)
    assert (await tenant.delete(f"/v1/workspaces/{tenant.workspace_id}")).status_code == 204
    await refused(tenant, tenant.token)
    await refused(tenant, member.token)


async def test_password_change_revokes_older_tokens(tenant: Tenant) -> None:
    body = {"currentPassword": tenant.password, "password": "a different passphrase"}
    fresh = data(await tenant.patch("/v1/profile", json=body))["token"]
    await refused(tenant, tenant.token)
    assert (await tenant.get("/v1/auth/me", token=fresh)).status_code == 200


async def stored_hash(runtime: Any, agent_id: str) -> str:
    async with runtime.db.session(write=False) as session:
        value = await session.scalar(select(Agent.password_hash).where(Agent.id == agent_id))
    assert value is not None
    return value


async def set_hash(runtime: Any, agent_id: str, value: str) -> None:
    async with runtime.db.transaction() as session:
        await session.execute(update(Agent).where(Agent.id == agent_id).values(password_hash=value))


async def login(tenant: Tenant, password: str) -> Any:
    body = {"email": tenant.email, "password": password}
    return await tenant.http.post("/v1/auth/login", json=body)


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
async def test_legacy_bcrypt_verifies_and_is_rehashed(
    make_tenant: Any, app_runtime: Any, prefix: str
) -> None:
    tenant = await make_tenant()
    legacy = bcrypt.hashpw(b"old system secret", bcrypt.gensalt(rounds=4)).decode()
    await set_hash(app_runtime, tenant.agent_id, prefix + legacy[4:])
    error(await login(tenant, "wrong password"), 401, "UNAUTHORIZED")
    assert (await stored_hash(app_runtime, tenant.agent_id)).startswith(prefix)
    data(await login(tenant, "old system secret"))
    assert (await stored_hash(app_runtime, tenant.agent_id)).startswith("$argon2id$")
    data(await login(tenant, "old system secret"))


async def test_long_legacy_password_hashed_as_sha256_hex(
    make_tenant: Any, app_runtime: Any
) -> None:
    tenant = await make_tenant()
    password = " correct horse battery staple" * 4  # 116 bytes, over bcrypt's 72
    digest = hashlib.sha256(password.encode()).hexdigest().encode()
    await set_hash(app_runtime, tenant.agent_id, bcrypt.hashpw(digest, bcrypt.gensalt(4)).decode())
    error(await login(tenant, password[:72]), 401, "UNAUTHORIZED")  # no truncation
    error(await login(tenant, password.strip()), 401, "UNAUTHORIZED")  # taken as typed
    data(await login(tenant, password))
    assert (await stored_hash(app_runtime, tenant.agent_id)).startswith("$argon2id$")
    data(await login(tenant, password))


async def test_login_answers_alike_for_unknown_email_and_wrong_password(
    tenant: Tenant,
) -> None:
    wrong = await login(tenant, "not the password")
    unknown = await tenant.http.post(
        "/v1/auth/login",
        json={"email": f"{unique('ghost')}@example.com", "password": "not the password"},
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["message"] == "Invalid email or password"


async def test_deactivated_member_cannot_sign_in(tenant: Tenant, smtp_server: Any) -> None:
    member = await add_member(tenant, smtp_server)
    assert (await tenant.delete(f"/v1/agents/{member.agent_id}")).status_code == 204
    body = {"email": member.email, "password": member.password}
    failure = error(await tenant.http.post("/v1/auth/login", json=body), 401, "UNAUTHORIZED")
    assert failure["message"] == "Invalid email or password"
