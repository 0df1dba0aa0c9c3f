"""Agents sign in with Microsoft (OpenID Connect code flow) against the identity emulator."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from enque.agents.models import Agent
from enque.auth import microsoft
from enque.core.runtime import Runtime
from tests.emulators.graph import GraphEmulator, query_of
from tests.support.api import Tenant, data, error


@pytest.fixture
def entra(
    graph_emulator: GraphEmulator, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> GraphEmulator:
    """The app registered in the emulator's tenant (a single-tenant Entra app)."""
    graph_emulator.configure(app_runtime.settings, monkeypatch, tenant=graph_emulator.tenant_id)
    return graph_emulator


async def sign_in(tenant: Tenant, emulator: GraphEmulator, login_hint: str, **params: str) -> str:
    """The browser's round trip; returns where Enque sends it in the end."""
    started = await tenant.http.get("/v1/auth/microsoft", params=params)
    url = data(started)["url"]
    assert url.startswith(f"{emulator.base_url}/{emulator.tenant_id}/oauth2/v2.0/authorize")
    assert query_of(url)["scope"] == ["openid profile email"]
    async with httpx.AsyncClient() as browser:
        at_microsoft = await browser.get(f"{url}&{urlencode({'login_hint': login_hint})}")
    assert at_microsoft.status_code == 302, at_microsoft.text
    back = urlsplit(at_microsoft.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == (
        "http://enque.test/v1/auth/microsoft/callback"
    )
    finished = await tenant.http.get(f"{back.path}?{back.query}")
    assert finished.status_code == 302
    return str(finished.headers["location"])


def token_of(location: str) -> str:
    target = urlsplit(location)
    assert f"{target.scheme}://{target.netloc}{target.path}" == "http://enque.test/signin"
    assert not target.query  # the token travels in the fragment only
    return parse_qs(target.fragment)["token"][0]


def error_of(location: str) -> str:
    target = urlsplit(location)
    assert target.path == "/signin" and not target.fragment
    return parse_qs(target.query)["error"][0]


async def agents_count(runtime: Runtime) -> int:
    async with runtime.db.session(write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(Agent)) or 0)


async def test_first_sign_in_links_the_account_then_the_id_is_enough(
    tenant: Tenant, entra: GraphEmulator, app_runtime: Runtime
) -> None:
    user = entra.add_user(tenant.email, "Tenant Admin")
    token = token_of(await sign_in(tenant, entra, tenant.email))
    me = data(await tenant.get("/v1/auth/me", token=token))
    assert me["agent"]["id"] == tenant.agent_id
    assert me["workspace"]["id"] == tenant.workspace_id
    async with app_runtime.db.session(write=False) as session:
        agent = await session.get_one(Agent, tenant.agent_id)
        assert agent.microsoft_id == user.id and agent.auth_method == "both"

    # The Microsoft address changes: the linked id still signs the same agent in.
    user.mail = "renamed@elsewhere.test"
    again = token_of(await sign_in(tenant, entra, user.mail))
    assert data(await tenant.get("/v1/auth/me", token=again))["agent"]["id"] == tenant.agent_id


async def test_nobody_is_created_and_strangers_are_refused(
    tenant: Tenant, entra: GraphEmulator, app_runtime: Runtime
) -> None:
    entra.add_user("stranger@contoso.test", "Stranger")
    before = await agents_count(app_runtime)
    assert error_of(await sign_in(tenant, entra, "stranger@contoso.test")) == "no_account"
    assert await agents_count(app_runtime) == before


async def test_an_address_from_a_shared_tenant_needs_a_verified_domain(
    tenant: Tenant, entra: GraphEmulator, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A multi-tenant app cannot trust an `email` claim alone (anyone may set it in their own
    tenant); it links by address only when the token says the domain is verified."""
    monkeypatch.setattr(app_runtime.settings, "microsoft_tenant_id", "organizations")
    entra.add_user(tenant.email, "Tenant Admin")

    async def through_organizations() -> str:
        started = data(await tenant.http.get("/v1/auth/microsoft"))["url"]
        assert "/organizations/oauth2/v2.0/authorize" in started
        async with httpx.AsyncClient() as browser:
            redirect = await browser.get(f"{started}&{urlencode({'login_hint': tenant.email})}")
        back = urlsplit(redirect.headers["location"])
        finished = await tenant.http.get(f"{back.path}?{back.query}")
        return str(finished.headers["location"])

    assert error_of(await through_organizations()) == "no_account"
    entra.email_domain_verified = True
    token = token_of(await through_organizations())
    assert data(await tenant.get("/v1/auth/me", token=token))["agent"]["id"] == tenant.agent_id


async def test_state_is_single_use_and_errors_go_back_to_the_app(
    tenant: Tenant, entra: GraphEmulator
) -> None:
    entra.add_user(tenant.email, "Tenant Admin")
    url = data(await tenant.http.get("/v1/auth/microsoft"))["url"]
    async with httpx.AsyncClient() as browser:
        redirect = await browser.get(f"{url}&{urlencode({'login_hint': tenant.email})}")
    back = urlsplit(redirect.headers["location"])
    callback = f"{back.path}?{back.query}"
    token_of((await tenant.http.get(callback)).headers["location"])
    assert error_of((await tenant.http.get(callback)).headers["location"]) == "expired_state"
    forged = "/v1/auth/microsoft/callback?code=abc&state=made-up"
    assert error_of((await tenant.http.get(forged)).headers["location"]) == "expired_state"
    state = query_of(data(await tenant.http.get("/v1/auth/microsoft"))["url"])["state"][0]
    denied = f"/v1/auth/microsoft/callback?error=access_denied&state={state}"
    assert error_of((await tenant.http.get(denied)).headers["location"]) == "access_denied"


async def test_deactivated_agent_is_refused(
    tenant: Tenant, entra: GraphEmulator, app_runtime: Runtime
) -> None:
    entra.add_user(tenant.email, "Tenant Admin")
    async with app_runtime.db.transaction() as session:
        (await session.get_one(Agent, tenant.agent_id)).is_active = False
    assert error_of(await sign_in(tenant, entra, tenant.email)) == "no_account"


async def test_not_configured(tenant: Tenant) -> None:
    error(await tenant.http.get("/v1/auth/microsoft"), 400, "BAD_REQUEST")


def test_id_token_must_be_signed_by_the_tenant_for_this_app(entra: GraphEmulator) -> None:
    settings = type(
        "S",
        (),
        {
            "microsoft_client_id": entra.client_id,
            "microsoft_tenant_id": entra.tenant_id,
            "microsoft_authority": entra.base_url,
        },
    )()
    ours = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    theirs = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(ours.public_key(), as_dict=True)
    keys = {"keys": [{**jwk, "kid": "k1", "use": "sig"}]}

    def token(key: rsa.RSAPrivateKey, **changes: object) -> str:
        claims = {
            "aud": entra.client_id, "iss": f"{entra.base_url}/{entra.tenant_id}/v2.0",
            "iat": 1_700_000_000, "exp": 4_000_000_000, "oid": "o-1", "tid": entra.tenant_id,
            "email": "a@contoso.test", **changes,
        }  # fmt: skip
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})

    identity = microsoft._checked(settings, token(ours), "k1", keys)  # type: ignore[arg-type]
    assert identity.object_id == "o-1" and identity.email_trusted
    for bad, code in (
        (token(theirs), "invalid_id_token"),
        (token(ours, aud="another-app"), "invalid_id_token"),
        (token(ours, exp=1_700_000_100), "invalid_id_token"),
        (token(ours, iss="https://evil.test/x/v2.0"), "invalid_id_token"),
        (
            token(ours, tid="other-tenant", iss=f"{entra.base_url}/other-tenant/v2.0"),
            "wrong_tenant",
        ),
    ):
        with pytest.raises(microsoft.SignInFailed) as failed:
            microsoft._checked(settings, bad, "k1", keys)  # type: ignore[arg-type]
        assert failed.value.code == code
