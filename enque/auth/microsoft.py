"""Signing in with Microsoft: the OpenID Connect authorization-code flow, for agents.

`state` is a random nonce kept server-side (10 minutes, single use). The callback exchanges the
code at Microsoft's token endpoint and checks the ID token it gets back (RS256 signature against
the tenant's published keys, audience, issuer, expiry); an identity sent any other way is never
trusted. It signs in the agent linked to that Microsoft account or, the first time, the agent
whose address the token names, when Microsoft vouches for the address: the app is registered for
one tenant and the user belongs to it, or the token carries `xms_edov` (the address's domain is
verified by its tenant). Nobody is created here: agents only come from invitations and new
workspaces. The browser only ever goes back to PUBLIC_URL: `/signin#token=…&expiresAt=…` on
success (a fragment reaches no server and no log), `/signin?error=…` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jwt
import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from enque.agents.models import Agent
from enque.auth.service import (
    SignedIn,
    complete_sign_in,
    find_agent_by_email,
    live_membership,
)
from enque.config import Settings
from enque.core.api import normalize_email
from enque.core.db import unit
from enque.core.errors import ApiError
from enque.core.runtime import Runtime
from enque.core.security import new_token, token_hash
from enque.email.errors import ChannelError
from enque.email.graph import OAuthClient

STATE_TTL = 600
CALLBACK_PATH = "/v1/auth/microsoft/callback"
RESULT_PATH = "/signin"
SCOPES = ("openid", "profile", "email")
SHARED_TENANTS = frozenset({"common", "organizations", "consumers"})


class SignInFailed(Exception):
    """The round trip failed; `code` goes back to the browser."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Identity:
    """A Microsoft account, as a checked ID token describes it."""

    object_id: str
    tenant_id: str
    email: str | None
    email_trusted: bool


def _client(settings: Settings) -> OAuthClient:
    if not (settings.microsoft_client_id and settings.microsoft_client_secret):
        raise ApiError(
            "BAD_REQUEST",
            "Microsoft sign-in is not configured: set MICROSOFT_CLIENT_ID and "
            "MICROSOFT_CLIENT_SECRET",
        )
    return OAuthClient(
        authority=settings.microsoft_authority,
        tenant=settings.microsoft_tenant_id or "common",
        client_id=settings.microsoft_client_id,
        client_secret=settings.microsoft_client_secret,
        redirect_uri=settings.public_url.rstrip("/") + CALLBACK_PATH,
        scopes=SCOPES,
    )


def _state_key(state: str) -> str:
    return f"microsoft-signin:{token_hash(state)}"


async def start(runtime: Runtime, *, workspace_id: str | None) -> str:
    """The Microsoft sign-in URL; `workspace_id` picks the workspace to land in."""
    client = _client(runtime.settings)
    state = new_token()
    payload = orjson.dumps({"workspace_id": workspace_id}).decode()
    await runtime.cache.set(_state_key(state), payload, STATE_TTL)
    return client.authorize_url(state=state, prompt="select_account")


async def finish(runtime: Runtime, *, state: str, code: str | None, error: str | None) -> str:
    """Handle Microsoft's redirect; returns where to send the browser (under PUBLIC_URL)."""
    base = runtime.settings.public_url.rstrip("/") + RESULT_PATH
    try:
        signed_in = await _finish(runtime, state=state, code=code, error=error)
    except SignInFailed as failed:
        return f"{base}?{urlencode({'error': failed.code})}"
    fragment = urlencode({"token": signed_in.token, "expiresAt": signed_in.expires_at})
    return f"{base}#{fragment}"


async def _claim_state(runtime: Runtime, state: str) -> dict[str, Any]:
    key = _state_key(state)
    raw = await runtime.cache.get(key) if state else None
    if raw is None or not await runtime.cache.set_nx(f"{key}:used", "1", STATE_TTL):
        raise SignInFailed("expired_state")
    await runtime.cache.delete(key)
    value = orjson.loads(raw)
    return value if isinstance(value, dict) else {}


async def _finish(runtime: Runtime, *, state: str, code: str | None, error: str | None) -> SignedIn:
    claim = await _claim_state(runtime, state)
    if error or not code:
        raise SignInFailed("access_denied")
    identity = await _identity(runtime.settings, code)
    workspace_id = claim.get("workspace_id")
    async with runtime.db.session(write=True) as session:
        return await _sign_in(session, identity, workspace_id if workspace_id else None)


async def _identity(settings: Settings, code: str) -> Identity:
    """Exchange the code and check the ID token that comes back with the tokens."""
    import httpx  # on first use: importing it slows every start

    client = _client(settings)
    async with httpx.AsyncClient(timeout=30) as http:
        client.http = http
        try:
            tokens = await client.exchange_code(code)
        except ChannelError as exc:
            raise SignInFailed("token_exchange_failed") from exc
        if not tokens.id_token:
            raise SignInFailed("token_exchange_failed")
        try:
            header = jwt.get_unverified_header(tokens.id_token)
            keys_url = (
                f"{settings.microsoft_authority.rstrip('/')}/"
                f"{settings.microsoft_tenant_id or 'common'}/discovery/v2.0/keys"
            )
            keys = (await http.get(keys_url)).raise_for_status().json()
        except (jwt.PyJWTError, httpx.HTTPError, ValueError) as exc:
            raise SignInFailed("token_exchange_failed") from exc
    return _checked(settings, tokens.id_token, header.get("kid"), keys)


def _checked(settings: Settings, id_token: str, kid: Any, keys: dict[str, Any]) -> Identity:
    try:
        key = jwt.PyJWKSet.from_dict(keys)[str(kid)]
        unverified = jwt.decode(id_token, options={"verify_signature": False})
        tenant = str(unverified.get("tid") or "")
        claims = jwt.decode(
            id_token,
            key=key.key,
            algorithms=["RS256"],
            audience=settings.microsoft_client_id,
            issuer=f"{settings.microsoft_authority.rstrip('/')}/{tenant}/v2.0",
            options={"require": ["exp", "iat", "aud", "iss", "oid", "tid"]},
        )
    except (jwt.PyJWTError, KeyError) as exc:
        raise SignInFailed("invalid_id_token") from exc
    configured = (settings.microsoft_tenant_id or "common").lower()
    own_tenant = configured not in SHARED_TENANTS
    if own_tenant and tenant.lower() != configured:
        raise SignInFailed("wrong_tenant")
    address = claims.get("email") or claims.get("preferred_username")
    try:
        email = normalize_email(str(address)) if address else None
    except ValueError:
        email = None
    return Identity(
        object_id=str(claims["oid"]),
        tenant_id=tenant,
        email=email,
        email_trusted=own_tenant or claims.get("xms_edov") is True,
    )


async def _sign_in(session: AsyncSession, identity: Identity, workspace_id: str | None) -> SignedIn:
    agent = (
        await session.execute(select(Agent).where(Agent.microsoft_id == identity.object_id))
    ).scalar_one_or_none()
    if agent is None and identity.email and identity.email_trusted:
        agent = await find_agent_by_email(session, identity.email)
        if agent is not None and agent.microsoft_id not in (None, identity.object_id):
            raise SignInFailed("linked_to_another_account")
    if agent is None or not agent.is_active:
        raise SignInFailed("no_account")
    membership = await live_membership(session, agent.id, workspace_id)
    if membership is None:
        raise SignInFailed("no_account")
    workspace, role = membership
    async with unit(session):
        if agent.microsoft_id is None:
            agent.microsoft_id = identity.object_id
            agent.auth_method = "both" if agent.password_hash else "microsoft"
        return complete_sign_in(session, agent, workspace, role, method="microsoft")
