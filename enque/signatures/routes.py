from __future__ import annotations

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.auth.deps import Admin, CurrentAgent, Principal
from enque.core.api import Envelope, JSONResponse, api_router, ok
from enque.core.deps import get_session
from enque.signatures import service
from enque.signatures.schemas import WorkspaceSignatureIn, WorkspaceSignatureOut

router = api_router(prefix="/v1/signatures", tags=["signatures"])


@router.get("/workspace", response_model=Envelope[WorkspaceSignatureOut])
async def get_workspace_signature(
    principal: Principal = CurrentAgent, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    return ok(await service.get_workspace_signature(session, workspace_id=principal.workspace_id))


@router.put("/workspace", response_model=Envelope[WorkspaceSignatureOut])
async def put_workspace_signature(
    body: WorkspaceSignatureIn,
    principal: Principal = Admin,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    row = await service.set_workspace_signature(
        session,
        workspace_id=principal.workspace_id,
        actor=Actor("agent", principal.agent_id),
        content=body.content,
        is_enabled=body.is_enabled,
    )
    return ok(WorkspaceSignatureOut.model_validate(row))
