from __future__ import annotations

from typing import Any

from fastapi import Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.auth.deps import Admin, CurrentAgent, Principal
from enque.core.api import Envelope, JSONResponse, api_router, created, no_content, ok
from enque.core.deps import get_session
from enque.customfields import service
from enque.customfields.schemas import (
    CustomFieldIn,
    CustomFieldOut,
    CustomFieldPatchIn,
    Entity,
    ValuesIn,
    ValuesOut,
)

router = api_router(prefix="/v1", tags=["custom-fields"])

# path segment → entity
SEGMENTS = {"tickets": "ticket", "users": "user", "companies": "company"}


def actor(principal: Principal) -> Actor:
    return Actor("agent", principal.agent_id)


def field_out(field: Any) -> CustomFieldOut:
    return CustomFieldOut.model_validate(field, from_attributes=True)


@router.get("/custom-fields", response_model=Envelope[list[CustomFieldOut]])
async def list_fields(
    entity: Entity | None = Query(None),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    fields = await service.list_fields(session, workspace_id=principal.workspace_id, entity=entity)
    return ok([field_out(f) for f in fields])


@router.post("/custom-fields", response_model=Envelope[CustomFieldOut], status_code=201)
async def create_field(
    body: CustomFieldIn, principal: Principal = Admin, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    field = await service.create_field(
        session,
        workspace_id=principal.workspace_id,
        actor=actor(principal),
        fields=body.model_dump(),
    )
    return created(field_out(field))


@router.patch("/custom-fields/{field_id}", response_model=Envelope[CustomFieldOut])
async def update_field(
    field_id: str,
    body: CustomFieldPatchIn,
    principal: Principal = Admin,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    field = await service.update_field(
        session,
        workspace_id=principal.workspace_id,
        actor=actor(principal),
        field_id=field_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return ok(field_out(field))


@router.delete("/custom-fields/{field_id}", status_code=204, response_class=Response)
async def delete_field(
    field_id: str, principal: Principal = Admin, session: AsyncSession = Depends(get_session)
) -> Response:
    await service.delete_field(
        session, workspace_id=principal.workspace_id, actor=actor(principal), field_id=field_id
    )
    return no_content()


def _values_routes(segment: str) -> None:
    entity = SEGMENTS[segment]

    async def read(
        entity_id: str,
        principal: Principal = CurrentAgent,
        session: AsyncSession = Depends(get_session),
    ) -> JSONResponse:
        values = await service.get_values(
            session, workspace_id=principal.workspace_id, entity=entity, entity_id=entity_id
        )
        return ok(ValuesOut(id=entity_id, custom_fields=values))

    async def write(
        entity_id: str,
        body: ValuesIn,
        principal: Principal = CurrentAgent,
        session: AsyncSession = Depends(get_session),
    ) -> JSONResponse:
        values = await service.set_values(
            session,
            workspace_id=principal.workspace_id,
            actor=actor(principal),
            entity=entity,
            entity_id=entity_id,
            changes=body.custom_fields,
        )
        return ok(ValuesOut(id=entity_id, custom_fields=values))

    path = f"/{segment}/{{entity_id}}/custom-fields"
    read.__name__ = f"read_{entity}_custom_fields"
    write.__name__ = f"write_{entity}_custom_fields"
    router.add_api_route(path, read, methods=["GET"], response_model=Envelope[ValuesOut])
    router.add_api_route(path, write, methods=["PATCH"], response_model=Envelope[ValuesOut])


for _segment in SEGMENTS:
    _values_routes(_segment)
