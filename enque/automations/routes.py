from __future__ import annotations

from fastapi import Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.auth.deps import CurrentAgent, Manager, Principal
from enque.automations import service
from enque.automations.schemas import (
    AutomationIn,
    AutomationOut,
    AutomationPatch,
    DryRunIn,
    DryRunOut,
    Trigger,
)
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

router = api_router(prefix="/v1/automations", tags=["automations"])


def _actor(principal: Principal) -> Actor:
    return Actor("agent", principal.agent_id)


@router.get("", response_model=Envelope[list[AutomationOut]])
async def list_automations(
    page: PageParams = Depends(page_params),
    trigger: Trigger | None = Query(None),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    result = await service.list_automations(
        session, workspace_id=principal.workspace_id, page=page, trigger=trigger
    )
    items = [AutomationOut.model_validate(r) for r in result.items]
    return ok(items, result.meta(page.limit))


@router.post("", response_model=Envelope[AutomationOut], status_code=201)
async def create_automation(
    body: AutomationIn,
    principal: Principal = Manager,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    rule = await service.create_automation(
        session, workspace_id=principal.workspace_id, actor=_actor(principal), data=body
    )
    return created(AutomationOut.model_validate(rule))


@router.get("/{automation_id}", response_model=Envelope[AutomationOut])
async def get_automation(
    automation_id: str,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    rule = await service.get_automation(
        session, workspace_id=principal.workspace_id, automation_id=automation_id
    )
    return ok(AutomationOut.model_validate(rule))


@router.patch("/{automation_id}", response_model=Envelope[AutomationOut])
async def update_automation(
    automation_id: str,
    body: AutomationPatch,
    principal: Principal = Manager,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    rule = await service.update_automation(
        session,
        workspace_id=principal.workspace_id,
        actor=_actor(principal),
        automation_id=automation_id,
        changes=body,
    )
    return ok(AutomationOut.model_validate(rule))


@router.delete("/{automation_id}", status_code=204, response_class=Response)
async def delete_automation(
    automation_id: str,
    principal: Principal = Manager,
    session: AsyncSession = Depends(get_session),
) -> Response:
    await service.delete_automation(
        session,
        workspace_id=principal.workspace_id,
        actor=_actor(principal),
        automation_id=automation_id,
    )
    return no_content()


@router.post("/{automation_id}/dry-run", response_model=Envelope[DryRunOut])
async def dry_run(
    automation_id: str,
    body: DryRunIn,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    result = await service.dry_run(
        session,
        workspace_id=principal.workspace_id,
        automation_id=automation_id,
        ticket_id=body.ticket_id,
        sla_target=body.sla_target,
    )
    return ok(result)
