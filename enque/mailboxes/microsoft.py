"""Connecting a Microsoft 365 mailbox: OAuth consent, then the mailbox with its tokens.

`state` is a random nonce kept server-side (cache, 10 minutes, single use) with the
workspace and the admin who started; the callback only ever redirects to PUBLIC_URL.
Connecting an address that is already a Microsoft mailbox of the workspace reconnects it
(new tokens, state back to active).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.core.api import normalize_email
from enque.core.db import new_id, unit
from enque.core.errors import ApiError
from enque.core.runtime import Runtime, runtime_of
from enque.core.secrets import seal, unseal
from enque.core.security import new_token, token_hash
from enque.email.errors import AuthenticationFailed, ChannelError
from enque.email.graph import GraphClient, MemoryTokenStore, OAuthClient, TokenSet
from enque.mailboxes.models import Mailbox, MicrosoftApp
from enque.mailboxes.service import emit_status

if TYPE_CHECKING:
    import httpx

CONNECT_TTL = 600
CALLBACK_PATH = "/v1/mailboxes/microsoft/callback"
RESULT_PATH = "/settings/mailboxes"


@dataclass(frozen=True)
class AppCredentials:
    tenant: str
    client_id: str
    client_secret: str


class ConnectFailed(Exception):
    """The consent round-trip failed; `code` goes back to the browser."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


async def app_credentials(session: AsyncSession, *, workspace_id: str) -> AppCredentials | None:
    """The workspace's own Entra app if it has one, else the one from configuration."""
    runtime = runtime_of(session)
    row = (
        await session.execute(select(MicrosoftApp).where(MicrosoftApp.workspace_id == workspace_id))
    ).scalar_one_or_none()
    if row is not None:
        secret = (unseal(runtime.cipher, row, "client_secret") or {}).get("secret", "")
        return AppCredentials(row.tenant_id, row.client_id, secret)
    settings = runtime.settings
    if settings.microsoft_client_id and settings.microsoft_client_secret:
        return AppCredentials(
            settings.microsoft_tenant_id or "common",
            settings.microsoft_client_id,
            settings.microsoft_client_secret,
        )
    return None


def oauth_client(
    runtime: Runtime, app: AppCredentials, http: httpx.AsyncClient | None = None
) -> OAuthClient:
    return OAuthClient(
        authority=runtime.settings.microsoft_authority,
        tenant=app.tenant,
        client_id=app.client_id,
        client_secret=app.client_secret,
        redirect_uri=runtime.settings.public_url.rstrip("/") + CALLBACK_PATH,
        http=http,
    )


def _state_key(state: str) -> str:
    return f"mailbox-connect:{token_hash(state)}"


async def start_connect(
    session: AsyncSession, *, workspace_id: str, agent_id: str, shared_mailbox: str | None
) -> str:
    """The Microsoft sign-in URL for an admin; `shared_mailbox` connects a shared mailbox
    the signing-in account has access to, instead of the account's own."""
    runtime = runtime_of(session)
    app = await app_credentials(session, workspace_id=workspace_id)
    if app is None:
        raise ApiError(
            "BAD_REQUEST",
            "Microsoft 365 is not configured: set MICROSOFT_CLIENT_ID and MICROSOFT_CLIENT_SECRET",
        )
    state = new_token()
    payload = {"workspace_id": workspace_id, "agent_id": agent_id, "mailbox": shared_mailbox}
    await runtime.cache.set(_state_key(state), orjson.dumps(payload).decode(), CONNECT_TTL)
    return oauth_client(runtime, app).authorize_url(state=state, prompt="select_account")


def result_url(runtime: Runtime, **params: str) -> str:
    return f"{runtime.settings.public_url.rstrip('/')}{RESULT_PATH}?{urlencode(params)}"


async def _claim_state(runtime: Runtime, state: str) -> dict[str, Any]:
    key = _state_key(state)
    raw = await runtime.cache.get(key)
    if raw is None or not await runtime.cache.set_nx(f"{key}:used", "1", CONNECT_TTL):
        raise ConnectFailed("expired_state")
    await runtime.cache.delete(key)
    value = orjson.loads(raw)
    return value if isinstance(value, dict) else {}


async def finish_connect(
    runtime: Runtime, *, state: str, code: str | None, error: str | None
) -> str:
    """Handle Microsoft's redirect; returns where to send the browser (under PUBLIC_URL).

    A GET that writes: it opens its own write session (after the calls to Microsoft).
    """
    try:
        async with runtime.db.session(write=True) as session:
            mailbox_id = await _finish(session, runtime, state=state, code=code, error=error)
    except ConnectFailed as failed:
        return result_url(runtime, error=failed.code)
    return result_url(runtime, connected=mailbox_id)


async def _finish(
    session: AsyncSession, runtime: Runtime, *, state: str, code: str | None, error: str | None
) -> str:
    import httpx  # on first use: importing it slows every start

    claim = await _claim_state(runtime, state)
    if error or not code:
        raise ConnectFailed("access_denied")
    workspace_id = str(claim["workspace_id"])
    app = await app_credentials(session, workspace_id=workspace_id)
    if app is None:
        raise ConnectFailed("not_configured")
    if session.in_transaction():
        await session.commit()  # no transaction stays open across the calls to Microsoft
    graph_url = runtime.settings.microsoft_graph_url
    async with httpx.AsyncClient() as http:
        oauth = oauth_client(runtime, app, http)
        try:
            tokens = await oauth.exchange_code(code)
        except ChannelError as exc:
            raise ConnectFailed("token_exchange_failed") from exc
        store = MemoryTokenStore(tokens)
        target = claim.get("mailbox") or "me"
        graph = GraphClient(
            base_url=graph_url, mailbox=target, tokens=store, oauth=oauth, http=http
        )
        try:
            profile = await graph.me()
        except AuthenticationFailed as exc:
            raise ConnectFailed("token_exchange_failed") from exc
        except ChannelError as exc:
            raise ConnectFailed("no_access") from exc
    address = str(profile.get("mail") or profile.get("userPrincipalName") or "")
    try:
        address = normalize_email(address)
    except ValueError as exc:
        raise ConnectFailed("no_mailbox") from exc
    return await _store(
        session,
        runtime,
        workspace_id=workspace_id,
        actor=Actor("agent", str(claim["agent_id"])),
        address=address,
        profile=profile,
        tokens=store.tokens,
        tenant=app.tenant,
    )


async def _store(
    session: AsyncSession,
    runtime: Runtime,
    *,
    workspace_id: str,
    actor: Actor,
    address: str,
    profile: dict[str, Any],
    tokens: TokenSet,
    tenant: str,
) -> str:
    async with unit(session):
        existing = (
            await session.execute(
                select(Mailbox).where(
                    Mailbox.workspace_id == workspace_id,
                    func.lower(Mailbox.email) == address.lower(),
                    Mailbox.deleted_at.is_(None),
                )
            )
        ).scalar_one_or_none()
        if existing is not None and existing.kind != "microsoft":
            raise ConnectFailed("address_in_use")
        mailbox = existing or Mailbox(
            id=new_id(),
            workspace_id=workspace_id,
            email=address,
            display_name=str(profile.get("displayName") or address)[:200],
            kind="microsoft",
            folder="inbox",
        )
        mailbox.settings = {"microsoft": {"user_id": str(profile.get("id", "")), "tenant": tenant}}
        recovered = existing is not None and (existing.state, existing.last_error) != (
            "active",
            None,
        )
        mailbox.state = "active"
        mailbox.error_count = 0
        mailbox.last_error = None
        if recovered:
            emit_status(session, mailbox)
        seal(runtime.cipher, mailbox, "credentials", tokens.as_dict())
        if existing is None:
            session.add(mailbox)
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="mailbox.reconnected" if existing is not None else "mailbox.created",
            subject_type="mailbox",
            subject_id=mailbox.id,
            after={"email": address, "kind": "microsoft"},
        )
    return mailbox.id
