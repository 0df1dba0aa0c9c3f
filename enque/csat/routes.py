from __future__ import annotations

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.auth.deps import Admin, CurrentAgent, Principal, limit_public
from enque.core.api import Envelope, JSONResponse, api_router, ok
from enque.core.deps import get_session
from enque.csat import service
from enque.csat.schemas import (
    AnswerIn,
    AnswerOut,
    CsatReportOut,
    CsatResponseOut,
    CsatSettingsIn,
    CsatSettingsOut,
    SurveyOut,
)

router = api_router(tags=["csat"])


@router.get("/v1/csat-settings", response_model=Envelope[CsatSettingsOut])
async def get_settings(
    principal: Principal = CurrentAgent, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    enabled = await service.get_settings(session, workspace_id=principal.workspace_id)
    return ok({"enabled": enabled})


@router.put("/v1/csat-settings", response_model=Envelope[CsatSettingsOut])
async def put_settings(
    body: CsatSettingsIn, principal: Principal = Admin, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    enabled = await service.set_settings(
        session,
        workspace_id=principal.workspace_id,
        actor=Actor("agent", principal.agent_id),
        enabled=body.enabled,
    )
    return ok({"enabled": enabled})


@router.get("/v1/csat/report", response_model=Envelope[list[CsatReportOut]])
async def csat_report(
    by: str = Query("agent", pattern="^(agent|team)$"),
    since: int | None = Query(None, alias="from", ge=0),
    until: int | None = Query(None, alias="to", ge=0),
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    rows = await service.report(
        session, workspace_id=principal.workspace_id, by=by, since=since, until=until
    )
    return ok(rows)


@router.get("/v1/tickets/{ticket_id}/csat", response_model=Envelope[list[CsatResponseOut]])
async def ticket_csat(
    ticket_id: str,
    principal: Principal = CurrentAgent,
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    return ok(
        await service.for_ticket(session, workspace_id=principal.workspace_id, ticket_id=ticket_id)
    )


@router.get("/v1/csat/{token}", response_model=Envelope[SurveyOut])
async def get_survey(
    token: str, request: Request, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    """Public: what the survey link is about (no login; the token is the key)."""
    await limit_public(request, "csat")
    return ok(await service.survey(session, token=token))


@router.post("/v1/csat/{token}", response_model=Envelope[AnswerOut])
async def answer_survey(
    token: str, body: AnswerIn, request: Request, session: AsyncSession = Depends(get_session)
) -> JSONResponse:
    """Public, once per link: the rating (1-5) and an optional comment."""
    await limit_public(request, "csat")
    return ok(await service.answer(session, token=token, rating=body.rating, comment=body.comment))
