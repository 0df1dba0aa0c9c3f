from __future__ import annotations

from fastapi import Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.auth.deps import CurrentAgent, Principal
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
from enque.scheduled_replies import service
from enque.scheduled_replies.schemas import ScheduledReplyIn, ScheduledReplyOut, ScheduledStatus

router = api_router(prefix="/v1", tags=["scheduled replies"])


@router.post(
    "/tickets/{ticket_id}/scheduled-replies",
    response_model=Envelope[ScheduledReplyOut],
    status_code=201,
)
async def schedule_reply(
    ticket_id: str,
    body: ScheduledReplyIn,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    row = await service.schedule_reply(
        session,
        workspace_id=principal.workspace_id,
        actor=Actor("agent", principal.agent_id),
        ticket_id=ticket_id,
        **body.model_dump(),
    )
    return created(service.view(row))


@router.get(
    "/tickets/{ticket_id}/scheduled-replies", response_model=Envelope[list[ScheduledReplyOut]]
)
async def list_scheduled_replies(
    ticket_id: str,
    page: PageParams = Depends(page_params),
    status: ScheduledStatus | None = Query(None),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    result = await service.list_scheduled_replies(
        session, workspace_id=principal.workspace_id, ticket_id=ticket_id, page=page, status=status
    )
    return ok([service.view(r) for r in result.items], result.meta(page.limit))


@router.delete("/scheduled-replies/{scheduled_reply_id}", status_code=204, response_class=Response)
async def cancel_scheduled_reply(
    scheduled_reply_id: str,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> Response:
    await service.cancel_scheduled_reply(
        session,
        workspace_id=principal.workspace_id,
        actor=Actor("agent", principal.agent_id),
        scheduled_reply_id=scheduled_reply_id,
        is_manager=principal.is_manager,
    )
    return no_content()
