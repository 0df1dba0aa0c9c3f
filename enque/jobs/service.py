"""Scheduler state for `GET /v1/admin/jobs`: each job's lease row and its recent runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from enque.core.scheduler import JobLease, JobRun, now_ms

RECENT_SECONDS = 24 * 3600
RECENT_RUNS = 5


def _run(run: JobRun) -> dict[str, Any]:
    return {
        "startedAt": run.started_ms // 1000,
        "durationMs": run.duration_ms,
        "ok": run.ok,
        "error": run.error,
        "holder": run.holder,
    }


async def job_states(session: AsyncSession, registered: dict[str, Any]) -> list[dict[str, Any]]:
    """Every job known to the database or to this process, with runs and failures (24 h)."""
    at = now_ms()
    leases = {lease.name: lease for lease in (await session.scalars(select(JobLease))).all()}
    since = at - RECENT_SECONDS * 1000
    counts = {
        job: (runs, failures or 0)
        for job, runs, failures in (
            await session.execute(
                select(
                    JobRun.job,
                    func.count(),
                    func.sum(case((JobRun.ok.is_(False), 1), else_=0)),
                )
                .where(JobRun.started_ms >= since)
                .group_by(JobRun.job)
            )
        ).all()
    }
    states = []
    for name in sorted(set(leases) | set(registered)):
        lease = leases.get(name)
        recent = (
            await session.scalars(
                select(JobRun)
                .where(JobRun.job == name)
                .order_by(JobRun.started_ms.desc())
                .limit(RECENT_RUNS)
            )
        ).all()
        last_failure = await session.scalar(
            select(JobRun)
            .where(JobRun.job == name, JobRun.ok.is_(False))
            .order_by(JobRun.started_ms.desc())
            .limit(1)
        )
        spec = registered.get(name)
        running = bool(lease and lease.lease_until_ms and lease.lease_until_ms >= at)
        runs, failures = counts.get(name, (0, 0))
        states.append(
            {
                "name": name,
                "intervalSeconds": spec.interval_seconds
                if spec
                else lease and lease.interval_seconds,
                "nextRunAt": lease.next_run_ms // 1000 if lease else None,
                "running": running,
                "holder": lease.holder if running and lease else None,
                "lastRun": _run(recent[0]) if recent else None,
                "lastFailure": _run(last_failure) if last_failure else None,
                "recentRuns": [_run(r) for r in recent],
                "runs24h": runs,
                "failures24h": int(failures),
            }
        )
    return states
