from __future__ import annotations

from typing import Any

from fastapi import Depends, Response
from sqlalchemy.ext.asyncio import AsyncSession

from enque.auth.deps import CurrentAgent, Principal
from enque.core.api import Envelope, JSONResponse, api_router, created, no_content, ok
from enque.core.deps import get_session
from enque.views import service
from enque.views.models import SavedView
from enque.views.schemas import ViewCountOut, ViewIn, ViewOut, ViewPatchIn

router = api_router(prefix="/v1/views", tags=["views"])


def view_out(view: SavedView) -> ViewOut:
    return ViewOut(
        id=view.id,
        name=view.name,
        filters=view.filters,
        sort=view.sort,
        shared=view.scope,
        team_id=view.team_id,
        owner_id=view.owner_id,
        position=view.position,
        created_at=view.created_at,
        updated_at=view.updated_at,
    )


def _fields(body: Any, dumped: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in dumped.items() if k not in ("shared", "filters")}
    if "shared" in dumped:
        fields["scope"] = dumped["shared"]
    if "filters" in dumped and body.filters is not None:
        fields["filters"] = body.filters.model_dump(by_alias=True, exclude_defaults=True)
    return fields


@router.get("", response_model=Envelope[list[ViewOut]])
async def list_views(
    principal: Principal = CurrentAgent, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    return ok([view_out(v) for v in await service.list_views(session, principal=principal)])


@router.get("/counts", response_model=Envelope[list[ViewCountOut]])
async def view_counts(
    principal: Principal = CurrentAgent, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    return ok(await service.counts(session, principal=principal))


@router.post("", response_model=Envelope[ViewOut], status_code=201)
async def create_view(
    body: ViewIn, principal: Principal = CurrentAgent, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    fields = _fields(body, body.model_dump())
    view = await service.create_view(session, principal=principal, fields=fields)
    return created(view_out(view))


@router.get("/{view_id}", response_model=Envelope[ViewOut])
async def get_view(
    view_id: str, principal: Principal = CurrentAgent, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    return ok(view_out(await service.get_view(session, principal=principal, view_id=view_id)))


@router.patch("/{view_id}", response_model=Envelope[ViewOut])
async def update_view(
    view_id: str,
    body: ViewPatchIn,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    fields = _fields(body, body.model_dump(exclude_unset=True))
    view = await service.update_view(session, principal=principal, view_id=view_id, changes=fields)
    return ok(view_out(view))


@router.delete("/{view_id}", status_code=204, response_class=Response)
async def delete_view(
    view_id: str, principal: Principal = CurrentAgent, session: AsyncSession = Depends(get_session)
) -> Response:
    await service.delete_view(session, principal=principal, view_id=view_id)
    return no_content()
