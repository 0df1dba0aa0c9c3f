from __future__ import annotations

from fastapi import Depends, Response
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.auth.deps import Admin, CurrentAgent, Principal
from enque.core.api import (
    Envelope,
    JSONResponse,
    PageParams,
    api_router,
    no_content,
    ok,
    page_params,
)
from enque.core.deps import get_session
from enque.workspaces import service
from enque.workspaces.schemas import MyWorkspaceOut, WorkspaceOut, WorkspacePatchIn

router = api_router(prefix="/v1/workspaces", tags=["workspaces"])


@router.get("", response_model=Envelope[list[MyWorkspaceOut]])
async def list_workspaces(
    page: PageParams = Depends(page_params),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    result = await service.list_my_workspaces(session, agent_id=principal.agent_id, page=page)
    items = [
        MyWorkspaceOut(**WorkspaceOut.model_validate(m.workspace).model_dump(), role=m.role)
        for m in result.items
    ]
    return ok(items, result.meta(page.limit))


@router.get("/{workspace_id}", response_model=Envelope[WorkspaceOut])
async def get_workspace(
    workspace_id: str,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    workspace = await service.get_workspace(
        session, workspace_id=principal.workspace_id, requested_id=workspace_id
    )
    return ok(WorkspaceOut.model_validate(workspace))


@router.patch("/{workspace_id}", response_model=Envelope[WorkspaceOut])
async def update_workspace(
    workspace_id: str,
    body: WorkspacePatchIn,
    principal: Principal = Admin,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    workspace = await service.update_workspace(
        session,
        workspace_id=principal.workspace_id,
        actor=Actor("agent", principal.agent_id),
        requested_id=workspace_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return ok(WorkspaceOut.model_validate(workspace))


@router.delete("/{workspace_id}", status_code=204, response_class=Response)
async def delete_workspace(
    workspace_id: str,
    principal: Principal = Admin,
    session: AsyncSession = Depends(get_session),
) -> Response:
    await service.delete_workspace(
        session,
        workspace_id=principal.workspace_id,
        actor=Actor("agent", principal.agent_id),
        requested_id=workspace_id,
    )
    return no_content()
