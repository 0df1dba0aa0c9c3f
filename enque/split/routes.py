from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.auth.deps import CurrentAgent, Principal
from enque.core.api import ApiInput, Envelope, JSONResponse, api_router, created
from enque.core.deps import get_session
from enque.split.service import split_ticket
from enque.tickets.schemas import TicketDetail
from enque.tickets.service import detail

router = api_router(prefix="/v1", tags=["tickets"])


class SplitIn(ApiInput):
    comment_ids: Annotated[
        list[Annotated[str, Field(max_length=64)]], Field(min_length=1, max_length=500)
    ]


@router.post("/tickets/{ticket_id}/split", response_model=Envelope[TicketDetail], status_code=201)
async def split(
    ticket_id: str,
    body: SplitIn,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    """Move these comments into a new ticket, linked to this one; answers the new ticket."""
    target = await split_ticket(
        session,
        workspace_id=principal.workspace_id,
        actor=Actor("agent", principal.agent_id),
        ticket_id=ticket_id,
        comment_ids=body.comment_ids,
    )
    return created(await detail(session, workspace_id=principal.workspace_id, ticket_id=target.id))
