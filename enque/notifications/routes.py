from __future__ import annotations

from fastapi import Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from enque.auth.deps import CurrentAgent, Principal
from enque.core.api import Envelope, JSONResponse, PageParams, api_router, ok, page_params
from enque.core.deps import get_session
from enque.notifications import service
from enque.notifications.schemas import (
    NotificationOut,
    ReadIn,
    ReadOut,
    SettingOut,
    SettingsPatch,
)

router = api_router(prefix="/v1/notifications", tags=["notifications"])


@router.get("", response_model=Envelope[list[NotificationOut]])
async def list_notifications(
    page: PageParams = Depends(page_params),
    unread: bool = Query(False, description="only unread notifications"),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    """The caller's in-app feed, newest first; `meta.unreadCount` counts all unread."""
    who = {"workspace_id": principal.workspace_id, "agent_id": principal.agent_id}
    result = await service.list_feed(session, page=page, unread_only=unread, **who)
    meta = result.meta(page.limit)
    meta["unreadCount"] = await service.unread_count(session, **who)
    return ok(result.items, meta)


@router.post("/read", response_model=Envelope[ReadOut])
async def mark_read(
    body: ReadIn, principal: Principal = CurrentAgent, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    """Mark the listed notifications (`ids`) or all of them (`all: true`) read."""
    who = {"workspace_id": principal.workspace_id, "agent_id": principal.agent_id}
    updated = await service.mark_read(session, ids=body.ids, all=body.all, **who)
    unread = await service.unread_count(session, **who)
    return ok(ReadOut(updated=updated, unread_count=unread))


@router.get("/settings", response_model=Envelope[list[SettingOut]])
async def get_settings(
    principal: Principal = CurrentAgent, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    return ok(
        await service.get_settings(
            session, workspace_id=principal.workspace_id, agent_id=principal.agent_id
        )
    )


@router.patch("/settings", response_model=Envelope[list[SettingOut]])
async def update_settings(
    body: SettingsPatch,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    return ok(
        await service.update_settings(
            session,
            workspace_id=principal.workspace_id,
            agent_id=principal.agent_id,
            changes=body.settings,
        )
    )
