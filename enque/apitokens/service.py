"""API tokens: create (the secret is returned once), list, revoke, and the bearer check.

A token is `enq_` + 43 random URL-safe characters. Only its SHA-256 is stored, with the first
12 characters for display. A token acts as the agent who created it, with that agent's current
role, limited to its scopes; deactivating the agent or revoking the token stops it at once.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from fastapi import Request
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.apitokens import scopes as scope_rules
from enque.apitokens.models import ApiToken
from enque.auth.context import load_context
from enque.auth.deps import Principal
from enque.core.api import PageParams
from enque.core.db import now, unit
from enque.core.errors import ApiError, forbidden, not_found, unauthorized
from enque.core.pagination import Page, SortKey, keyset_page
from enque.core.runtime import Runtime, runtime_of
from enque.core.security import token_hash

log = logging.getLogger(__name__)

TOKEN_PREFIX = "enq_"
DISPLAY_CHARS = 12
LAST_USED_RESOLUTION = 60  # seconds: `last_used_at` is written at most once a minute per token
_background: set[asyncio.Task[None]] = set()


def _check_scopes(scopes: list[str]) -> list[str]:
    wanted = list(dict.fromkeys(scopes))
    bad = [
        {"path": f"scopes.{i}", "message": f"unknown scope {s!r}"}
        for i, s in enumerate(scopes)
        if not scope_rules.valid_scope(s)
    ]
    if bad:
        raise ApiError("VALIDATION_ERROR", "Unknown scope", bad)
    return wanted


async def create_token(
    session: AsyncSession, *, workspace_id: str, actor: Actor, name: str, scopes: list[str]
) -> tuple[ApiToken, str]:
    """The new token row and its secret (the only time the secret exists outside the caller)."""
    wanted = _check_scopes(scopes)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with unit(session):
        token = ApiToken(
            workspace_id=workspace_id,
            name=name,
            scopes=wanted,
            token_hash=token_hash(secret),
            prefix=secret[:DISPLAY_CHARS],
            created_by_id=actor.id,
        )
        session.add(token)
        await session.flush()
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="api_token.created",
            subject_type="api_token",
            subject_id=token.id,
            after={"name": name, "scopes": wanted},
        )
    return token, secret


async def list_tokens(
    session: AsyncSession, *, workspace_id: str, page: PageParams
) -> Page[ApiToken]:
    stmt = select(ApiToken).where(ApiToken.workspace_id == workspace_id)
    return await keyset_page(
        session,
        stmt,
        [SortKey(ApiToken.id, descending=True)],
        page,
        key_of=lambda t: (t.id,),
    )


async def revoke_token(
    session: AsyncSession, *, workspace_id: str, actor: Actor, token_id: str
) -> None:
    async with unit(session):
        token = (
            await session.execute(
                select(ApiToken).where(
                    ApiToken.workspace_id == workspace_id, ApiToken.id == token_id
                )
            )
        ).scalar_one_or_none()
        if token is None:
            raise not_found("API token")
        if token.revoked_at is not None:
            return
        token.revoked_at = now()
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="api_token.revoked",
            subject_type="api_token",
            subject_id=token.id,
        )


# ---------------------------------------------------------------- the bearer check


async def _touch(runtime: Runtime, token_id: str, moment: int) -> None:
    try:
        async with runtime.db.transaction() as session:
            await session.execute(
                update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=moment)
            )
    except Exception:
        log.warning("could not record the use of API token %s", token_id, exc_info=True)


async def resolve(request: Request, session: AsyncSession, secret: str) -> Principal:
    """The principal of an API token, or UNAUTHORIZED; FORBIDDEN outside its scopes."""
    runtime = runtime_of(session)
    token = (
        await session.execute(select(ApiToken).where(ApiToken.token_hash == token_hash(secret)))
    ).scalar_one_or_none()
    if token is None or token.revoked_at is not None:
        raise unauthorized("Invalid or revoked API token")
    context = await load_context(
        runtime,
        agent_id=token.created_by_id,
        workspace_id=token.workspace_id,
        jti=f"api-token:{token.id}",
        session=session,
    )
    granted = frozenset(token.scopes)
    if not scope_rules.allows(granted, request.method, request.url.path):
        raise forbidden("The API token's scopes do not cover this request")
    moment = now()
    if (token.last_used_at is None or moment - token.last_used_at >= LAST_USED_RESOLUTION) and (
        await runtime.cache.set_nx(f"api-token-used:{token.id}", "1", LAST_USED_RESOLUTION)
    ):
        # Written outside the request: the request may hold the only writer (SQLite).
        task = asyncio.get_running_loop().create_task(_touch(runtime, token.id, moment))
        _background.add(task)
        task.add_done_callback(_background.discard)
    return Principal(
        agent_id=token.created_by_id,
        workspace_id=token.workspace_id,
        role=context.role,
        jti=token.id,
        expires_at=0,
        kind="api_token",
        scopes=granted,
    )
