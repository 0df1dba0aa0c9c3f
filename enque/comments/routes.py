from __future__ import annotations

from fastapi import Depends, Response
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.auth.deps import CurrentAgent, Principal
from enque.comments import service
from enque.comments.schemas import CommentOut, NoteIn, NotePatch, ReplyIn
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

router = api_router(prefix="/v1", tags=["comments"])


def actor_of(principal: Principal) -> Actor:
    return Actor("agent", principal.agent_id)


@router.get("/tickets/{ticket_id}/comments", response_model=Envelope[list[CommentOut]])
async def list_comments(
    ticket_id: str,
    page: PageParams = Depends(page_params),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    result = await service.list_comments(
        session, workspace_id=principal.workspace_id, ticket_id=ticket_id, page=page
    )
    return ok(result.items, result.meta(page.limit))


@router.post("/tickets/{ticket_id}/reply", response_model=Envelope[CommentOut], status_code=201)
async def reply(
    ticket_id: str,
    body: ReplyIn,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    comment = await service.add_reply(
        session,
        workspace_id=principal.workspace_id,
        actor=actor_of(principal),
        ticket_id=ticket_id,
        **body.model_dump(),
    )
    return created(await service.comment_view(session, principal.workspace_id, comment.id))


@router.post("/tickets/{ticket_id}/notes", response_model=Envelope[CommentOut], status_code=201)
async def add_note(
    ticket_id: str,
    body: NoteIn,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    comment = await service.add_note(
        session,
        workspace_id=principal.workspace_id,
        actor=actor_of(principal),
        ticket_id=ticket_id,
        **body.model_dump(),
    )
    return created(await service.comment_view(session, principal.workspace_id, comment.id))


@router.patch("/comments/{comment_id}", response_model=Envelope[CommentOut])
async def edit_note(
    comment_id: str,
    body: NotePatch,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    await service.edit_note(
        session,
        workspace_id=principal.workspace_id,
        actor=actor_of(principal),
        comment_id=comment_id,
        content=body.content,
    )
    return ok(await service.comment_view(session, principal.workspace_id, comment_id))


@router.delete("/comments/{comment_id}", status_code=204, response_class=Response)
async def delete_note(
    comment_id: str,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> Response:
    await service.delete_note(
        session,
        workspace_id=principal.workspace_id,
        actor=actor_of(principal),
        comment_id=comment_id,
    )
    return no_content()
