from __future__ import annotations

from typing import Any

from fastapi import Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.auth.deps import Admin, CurrentAgent, Principal
from enque.core.api import (
    Envelope,
    JSONResponse,
    api_router,
    created,
    decode_cursor,
    encode_cursor,
    no_content,
    ok,
    page_meta,
)
from enque.core.deps import get_session
from enque.sla import service
from enque.sla.models import SlaPolicy
from enque.sla.schemas import (
    AttainmentOut,
    BusinessHoursIn,
    BusinessHoursOut,
    SlaPolicyIn,
    SlaPolicyOut,
    SlaPolicyPatchIn,
    SlaTicketOut,
    TicketSlaOut,
)

router = api_router(tags=["sla"])

TARGET_FIELDS = ("first_response_minutes", "next_response_minutes", "resolution_minutes")


def actor(principal: Principal) -> Actor:
    return Actor("agent", principal.agent_id)


def policy_out(policy: SlaPolicy) -> dict[str, Any]:
    return SlaPolicyOut.model_validate(
        {
            "id": policy.id,
            "name": policy.name,
            "match": policy.match or {},
            "targets": {f: getattr(policy, f) for f in TARGET_FIELDS},
            "position": policy.position,
            "created_at": policy.created_at,
            "updated_at": policy.updated_at,
        }
    ).model_dump(by_alias=True)


def _policy_fields(body: dict[str, Any], raw: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if "name" in body:
        fields["name"] = body["name"]
    if "position" in body:
        fields["position"] = body["position"]
    if raw.match is not None and "match" in body:
        fields["match"] = raw.match.model_dump(by_alias=True, exclude_none=True)
    if raw.targets is not None and "targets" in body:
        fields.update({f: body["targets"].get(f) for f in TARGET_FIELDS})
    return fields


@router.get("/v1/business-hours", response_model=Envelope[BusinessHoursOut])
async def get_business_hours(
    principal: Principal = CurrentAgent, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    hours = await service.get_hours(session, workspace_id=principal.workspace_id)
    return ok(_hours_out(hours))


def _hours_out(hours: Any) -> BusinessHoursOut:
    if hours is None:
        return BusinessHoursOut(timezone="UTC", intervals=[], holidays=[], always_open=True)
    return BusinessHoursOut(
        timezone=hours.timezone,
        intervals=hours.intervals,
        holidays=hours.holidays,
        always_open=not hours.intervals,
    )


@router.put("/v1/business-hours", response_model=Envelope[BusinessHoursOut])
async def put_business_hours(
    body: BusinessHoursIn,
    principal: Principal = Admin,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    hours = await service.set_hours(
        session,
        workspace_id=principal.workspace_id,
        actor=actor(principal),
        timezone=body.timezone,
        intervals=[i.model_dump() for i in body.intervals],
        holidays=body.holidays,
    )
    return ok(_hours_out(hours))


@router.get("/v1/sla-policies", response_model=Envelope[list[SlaPolicyOut]])
async def list_policies(
    principal: Principal = CurrentAgent, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    policies = await service.list_policies(session, workspace_id=principal.workspace_id)
    return ok([policy_out(p) for p in policies])


@router.post("/v1/sla-policies", response_model=Envelope[SlaPolicyOut], status_code=201)
async def create_policy(
    body: SlaPolicyIn, principal: Principal = Admin, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    fields = _policy_fields(body.model_dump(), body)
    policy = await service.create_policy(
        session, workspace_id=principal.workspace_id, actor=actor(principal), fields=fields
    )
    return created(policy_out(policy))


@router.patch("/v1/sla-policies/{policy_id}", response_model=Envelope[SlaPolicyOut])
async def update_policy(
    policy_id: str,
    body: SlaPolicyPatchIn,
    principal: Principal = Admin,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    fields = _policy_fields(body.model_dump(exclude_unset=True), body)
    policy = await service.update_policy(
        session,
        workspace_id=principal.workspace_id,
        actor=actor(principal),
        policy_id=policy_id,
        changes=fields,
    )
    return ok(policy_out(policy))


@router.delete("/v1/sla-policies/{policy_id}", status_code=204, response_class=Response)
async def delete_policy(
    policy_id: str, principal: Principal = Admin, session: AsyncSession = Depends(get_session)
) -> Response:
    await service.delete_policy(
        session, workspace_id=principal.workspace_id, actor=actor(principal), policy_id=policy_id
    )
    return no_content()


@router.get("/v1/tickets/{ticket_id}/sla", response_model=Envelope[TicketSlaOut])
async def ticket_sla(
    ticket_id: str,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    return ok(
        await service.ticket_state(
            session, workspace_id=principal.workspace_id, ticket_id=ticket_id
        )
    )


@router.get("/v1/sla/tickets", response_model=Envelope[list[SlaTicketOut]])
async def due_tickets(
    breached: bool | None = Query(None),
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(None, max_length=512),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    """Tickets under an SLA, soonest due first; `breached=true` for the breached ones."""
    items, following = await service.due_tickets(
        session,
        workspace_id=principal.workspace_id,
        breached=breached,
        limit=limit,
        cursor=decode_cursor(cursor, 2) if cursor else None,
    )
    return ok(items, page_meta(limit, encode_cursor(following) if following else None))


@router.get("/v1/sla/report", response_model=Envelope[list[AttainmentOut]])
async def attainment(
    by: str = Query("team", pattern="^(team|agent)$"),
    since: int | None = Query(None, alias="from", ge=0),
    until: int | None = Query(None, alias="to", ge=0),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    rows = await service.report(
        session, workspace_id=principal.workspace_id, by=by, since=since, until=until
    )
    return ok(rows)
