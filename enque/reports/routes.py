from __future__ import annotations

from typing import Any, Literal

from fastapi import Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from enque.auth.deps import Manager, Principal
from enque.core.api import MAX_UNIX, Envelope, api_router, ok
from enque.core.deps import get_session
from enque.reports import queries, service
from enque.reports.csv_export import csv_response, wants_csv
from enque.reports.queries import Scope

router = api_router(prefix="/v1/reports", tags=["reports"])


async def report_scope(
    start: int | None = Query(None, alias="from", ge=0, le=MAX_UNIX, description="Unix seconds"),
    end: int | None = Query(None, alias="to", ge=0, le=MAX_UNIX, description="Unix seconds"),
    team_id: str | None = Query(None, alias="teamId", max_length=36),
    agent_id: str | None = Query(None, alias="agentId", max_length=36),
    principal: Principal = Manager,
    session: AsyncSession = Depends(get_session),
) -> Scope:
    return await service.make_scope(
        session,
        workspace_id=principal.workspace_id,
        start=start,
        end=end,
        team_id=team_id,
        agent_id=agent_id,
    )


def _meta(scope: Scope) -> dict[str, Any]:
    return {"from": scope.start, "to": scope.end}


@router.get("/summary", response_model=Envelope[dict[str, Any]])
async def summary(
    request: Request,
    scope: Scope = Depends(report_scope),
    session: AsyncSession = Depends(get_session),
) -> Response:
    report = await queries.summary(session, scope)
    if wants_csv(request):
        return csv_response("summary", ("metric", "value"), service.summary_rows(report))
    return ok(report, _meta(scope))


@router.get("/response-times", response_model=Envelope[dict[str, Any]])
async def response_times(
    request: Request,
    scope: Scope = Depends(report_scope),
    session: AsyncSession = Depends(get_session),
) -> Response:
    report = await queries.response_times(session, scope)
    if wants_csv(request):
        rows = service.response_time_rows(report)
        return csv_response("response-times", service.RESPONSE_TIME_COLUMNS, rows)
    return ok(report, _meta(scope))


@router.get("/volume", response_model=Envelope[list[dict[str, Any]]])
async def volume(
    request: Request,
    interval: Literal["day", "week"] = "day",
    group_by: Literal["none", "mailbox", "category", "priority"] = Query("none", alias="groupBy"),
    scope: Scope = Depends(report_scope),
    session: AsyncSession = Depends(get_session),
) -> Response:
    rows = await queries.volume(session, scope, interval=interval, group_by=group_by)
    if wants_csv(request):
        columns = ("bucket", "count") if group_by == "none" else ("bucket", "key", "count")
        return csv_response("volume", columns, rows)
    return ok(rows, {**_meta(scope), "interval": interval, "groupBy": group_by})


@router.get("/agents", response_model=Envelope[list[dict[str, Any]]])
async def agents(
    request: Request,
    scope: Scope = Depends(report_scope),
    session: AsyncSession = Depends(get_session),
) -> Response:
    rows = await queries.agents(session, scope)
    if wants_csv(request):
        return csv_response("agents", service.AGENT_COLUMNS, rows)
    return ok(rows, _meta(scope))
