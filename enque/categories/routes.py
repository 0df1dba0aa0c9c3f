from __future__ import annotations

from fastapi import Depends, Response
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.auth.deps import CurrentAgent, Manager, Principal
from enque.categories import service
from enque.categories.schemas import CategoryIn, CategoryOut, CategoryPatch
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

router = api_router(prefix="/v1/categories", tags=["categories"])


@router.get("", response_model=Envelope[list[CategoryOut]])
async def list_categories(
    page: PageParams = Depends(page_params),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    result = await service.list_categories(session, workspace_id=principal.workspace_id, page=page)
    items = [CategoryOut.model_validate(c) for c in result.items]
    return ok(items, result.meta(page.limit))


@router.post("", response_model=Envelope[CategoryOut], status_code=201)
async def create_category(
    body: CategoryIn, principal: Principal = Manager, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    category = await service.create_category(
        session,
        workspace_id=principal.workspace_id,
        actor=Actor("agent", principal.agent_id),
        **body.model_dump(),
    )
    return created(CategoryOut.model_validate(category))


@router.patch("/{category_id}", response_model=Envelope[CategoryOut])
async def update_category(
    category_id: str,
    body: CategoryPatch,
    principal: Principal = Manager,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    category = await service.update_category(
        session,
        workspace_id=principal.workspace_id,
        actor=Actor("agent", principal.agent_id),
        category_id=category_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return ok(CategoryOut.model_validate(category))


@router.delete("/{category_id}", status_code=204, response_class=Response)
async def delete_category(
    category_id: str, principal: Principal = Manager, session: AsyncSession = Depends(get_session)
) -> Response:
    await service.delete_category(
        session,
        workspace_id=principal.workspace_id,
        actor=Actor("agent", principal.agent_id),
        category_id=category_id,
    )
    return no_content()
