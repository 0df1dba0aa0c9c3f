from __future__ import annotations

from fastapi import Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.auth.deps import CurrentAgent, Manager, Principal
from enque.canned import service
from enque.canned.schemas import (
    CannedReplyIn,
    CannedReplyOut,
    CannedReplyPatch,
    RenderIn,
    RenderOut,
)
from enque.core.api import (
    Envelope,
    JSONResponse,
    PageParams,
    api_router,
    created,
    no_content,
    ok,
    page_params,
)
from enque.core.deps import get_session

router = api_router(prefix="/v1/canned-replies", tags=["canned replies"])


async def _scope(session: AsyncSession, principal: Principal) -> service.Scope:
    return await service.scope_of(
        session,
        workspace_id=principal.workspace_id,
        agent_id=principal.agent_id,
        is_manager=principal.is_manager,
    )


@router.get("", response_model=Envelope[list[CannedReplyOut]])
async def list_canned_replies(
    page: PageParams = Depends(page_params),
    q: str | None = Query(None, max_length=200),
    team_id: str | None = Query(None, alias="teamId", max_length=64),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    result = await service.list_canned_replies(
        session,
        workspace_id=principal.workspace_id,
        scope=await _scope(session, principal),
        page=page,
        q=q,
        team_id=team_id,
    )
    items = [CannedReplyOut.model_validate(c) for c in result.items]
    return ok(items, result.meta(page.limit))


@router.post("", response_model=Envelope[CannedReplyOut], status_code=201)
async def create_canned_reply(
    body: CannedReplyIn,
    principal: Principal = Manager,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    reply = await service.create_canned_reply(
        session,
        workspace_id=principal.workspace_id,
        actor=Actor("agent", principal.agent_id),
        **body.model_dump(),
    )
    return created(CannedReplyOut.model_validate(reply))


@router.get("/{canned_reply_id}", response_model=Envelope[CannedReplyOut])
async def get_canned_reply(
    canned_reply_id: str,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    reply = await service.get_canned_reply(
        session,
        workspace_id=principal.workspace_id,
        canned_reply_id=canned_reply_id,
        scope=await _scope(session, principal),
    )
    return ok(CannedReplyOut.model_validate(reply))


@router.patch("/{canned_reply_id}", response_model=Envelope[CannedReplyOut])
async def update_canned_reply(
    canned_reply_id: str,
    body: CannedReplyPatch,
    principal: Principal = Manager,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    reply = await service.update_canned_reply(
        session,
        workspace_id=principal.workspace_id,
        actor=Actor("agent", principal.agent_id),
        canned_reply_id=canned_reply_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return ok(CannedReplyOut.model_validate(reply))


@router.delete("/{canned_reply_id}", status_code=204, response_class=Response)
async def delete_canned_reply(
    canned_reply_id: str,
    principal: Principal = Manager,
    session: AsyncSession = Depends(get_session),
) -> Response:
    await service.delete_canned_reply(
        session,
        workspace_id=principal.workspace_id,
        actor=Actor("agent", principal.agent_id),
        canned_reply_id=canned_reply_id,
    )
    return no_content()


@router.post("/{canned_reply_id}/render", response_model=Envelope[RenderOut])
async def render_canned_reply(
    canned_reply_id: str,
    body: RenderIn,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    rendered = await service.render_canned_reply(
        session,
        workspace_id=principal.workspace_id,
        canned_reply_id=canned_reply_id,
        ticket_id=body.ticket_id,
        agent_id=principal.agent_id,
        scope=await _scope(session, principal),
    )
    return ok(RenderOut.model_validate(rendered))
