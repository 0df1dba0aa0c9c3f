"""`GET /v1/realtime` (the WebSocket) and the viewers of a ticket."""

from __future__ import annotations

from fastapi import Depends, WebSocket
from sqlalchemy.ext.asyncio import AsyncSession

from enque.auth.deps import CurrentAgent, Principal
from enque.core.api import Envelope, JSONResponse, api_router, ok
from enque.core.deps import get_session
from enque.core.errors import not_found
from enque.realtime import socket
from enque.realtime.hub import Hub
from enque.realtime.schemas import ViewerOut

router = api_router(prefix="/v1", tags=["realtime"])


@router.websocket("/realtime")
async def realtime(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.runtime.services["realtime"]
    await socket.serve(hub, websocket)


@router.get("/tickets/{ticket_id}/viewers", response_model=Envelope[list[ViewerOut]])
async def ticket_viewers(
    ticket_id: str,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    runtime = session.info["runtime"]
    exists = runtime.services.get("ticket_exists")
    if exists is None or not await exists(
        session, workspace_id=principal.workspace_id, ticket_id=ticket_id
    ):
        raise not_found("Ticket")
    hub: Hub = runtime.services["realtime"]
    return ok(await hub.presence.viewers(principal.workspace_id, ticket_id))
