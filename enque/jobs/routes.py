from __future__ import annotations

from typing import Any

from fastapi import Depends
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from enque.auth.deps import Admin, Principal
from enque.core.api import ApiModel, Envelope, JSONResponse, api_router, ok
from enque.core.deps import current_runtime, get_session
from enque.core.runtime import Runtime
from enque.core.scheduler import scheduler_of
from enque.jobs import service

router = api_router(prefix="/v1/admin/jobs", tags=["admin"])


class JobRunOut(ApiModel):
    started_at: int
    duration_ms: int
    ok: bool
    error: str | None
    holder: str


class JobOut(ApiModel):
    name: str
    interval_seconds: float | None
    next_run_at: int | None
    running: bool
    holder: str | None
    last_run: JobRunOut | None
    last_failure: JobRunOut | None
    recent_runs: list[JobRunOut]
    runs24h: int = Field(alias="runs24h")
    failures24h: int = Field(alias="failures24h")


@router.get("", response_model=Envelope[list[JobOut]])
async def list_jobs(
    principal: Principal = Admin,
    runtime: Runtime = Depends(current_runtime),
    session: AsyncSession = Depends(get_session),
) -> JSONResponse:
    registered: dict[str, Any] = dict(scheduler_of(runtime).jobs)
    return ok(await service.job_states(session, registered))
