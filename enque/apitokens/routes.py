from __future__ import annotations

from fastapi import Depends, Response
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.apitokens import service
from enque.apitokens.models import ApiToken
from enque.apitokens.schemas import ApiTokenCreatedOut, ApiTokenIn, ApiTokenOut
from enque.auth.deps import Admin, Principal
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

router = api_router(prefix="/v1/api-tokens", tags=["api-tokens"])


def token_out(token: ApiToken) -> ApiTokenOut:
    return ApiTokenOut.model_validate(token, from_attributes=True)


@router.get("", response_model=Envelope[list[ApiTokenOut]])
async def list_tokens(
    page: PageParams = Depends(page_params),
    principal: Principal = Admin,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    result = await service.list_tokens(session, workspace_id=principal.workspace_id, page=page)
    return ok([token_out(t) for t in result.items], result.meta(page.limit))


@router.post("", response_model=Envelope[ApiTokenCreatedOut], status_code=201)
async def create_token(
    body: ApiTokenIn, principal: Principal = Admin, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    token, secret = await service.create_token(
        session,
        workspace_id=principal.workspace_id,
        actor=Actor("agent", principal.agent_id),
        name=body.name,
        scopes=body.scopes,
    )
    out = ApiTokenCreatedOut(**token_out(token).model_dump(), token=secret)
    return created(out)


@router.delete("/{token_id}", status_code=204, response_class=Response)
async def revoke_token(
    token_id: str, principal: Principal = Admin, session: AsyncSession = Depends(get_session)
) -> Response:
    await service.revoke_token(
        session,
        workspace_id=principal.workspace_id,
        actor=Actor("agent", principal.agent_id),
        token_id=token_id,
    )
    return no_content()
