"""The scheduler: each tick runs once across schedulers and processes; leases expire."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import create_async_engine

from enque.core.runtime import Runtime
from enque.core.scheduler import JobLease, JobRun, Scheduler, now_ms, scheduler_of
from tests.support.api import Tenant, data, error, unique
from tests.support.helpdesk import add_agent
from tests.support.services import create_pg_database, drop_pg_database, postgres_available, require


async def _make_due(runtime: Runtime, name: str) -> None:
    async with runtime.db.transaction() as session:
        await session.execute(
            update(JobLease).where(JobLease.name == name).values(next_run_ms=now_ms() - 1)
        )


async def _runs(runtime: Runtime, name: str) -> list[JobRun]:
    async with runtime.db.session(write=False) as session:
        rows = await session.scalars(select(JobRun).where(JobRun.job == name))
        return list(rows.all())


async def test_three_schedulers_run_each_tick_once(app_runtime: Runtime) -> None:
    name = unique("job.count")
    count = 0

    async def job() -> None:
        nonlocal count
        count += 1
        await asyncio.sleep(0.05)

    schedulers = [Scheduler(app_runtime, holder=f"s{i}") for i in range(3)]
    for scheduler in schedulers:
        scheduler.register(name, 3600, job)
    for _ in range(5):
        await _make_due(app_runtime, name)
        started = await asyncio.gather(*(s.run_due() for s in schedulers))
        assert sum(name in names for names in started) == 1
        for scheduler in schedulers:
            await scheduler.wait_idle()
        # not due again within the interval
        assert not any([name in await s.run_due() for s in schedulers])
    assert count == 5
    runs = await _runs(app_runtime, name)
    assert len(runs) == 5 and len({r.tick_ms for r in runs}) == 5
    assert all(r.ok for r in runs)


async def test_a_crashed_holders_lease_expires(app_runtime: Runtime) -> None:
    name = unique("job.crash")
    ran: list[str] = []

    async def job() -> None:
        ran.append("x")

    scheduler = Scheduler(app_runtime, holder="survivor")
    scheduler.register(name, 3600, job)
    await scheduler.run_due()
    await scheduler.wait_idle()
    assert ran == ["x"]
    # another process claimed the next tick and died holding it
    async with app_runtime.db.transaction() as session:
        await session.execute(
            update(JobLease)
            .where(JobLease.name == name)
            .values(next_run_ms=now_ms() - 1, holder="dead", lease_until_ms=now_ms() + 60_000)
        )
    assert await scheduler.run_due() == []
    async with app_runtime.db.transaction() as session:
        await session.execute(
            update(JobLease).where(JobLease.name == name).values(lease_until_ms=now_ms() - 1)
        )
    assert await scheduler.run_due() == [name]
    await scheduler.wait_idle()
    assert ran == ["x", "x"]


async def test_long_jobs_renew_their_lease(app_runtime: Runtime) -> None:
    name = unique("job.long")
    release = asyncio.Event()

    async def job() -> None:
        await release.wait()

    holder, other = Scheduler(app_runtime, holder="a"), Scheduler(app_runtime, holder="b")
    for scheduler in (holder, other):
        scheduler.register(name, 0.5, job, lease_seconds=1.5)
    try:
        assert await holder.run_due() == [name]
        await asyncio.sleep(3.5)  # past the first lease: renewed meanwhile, and the tick is due
        assert await other.run_due() == []
    finally:
        release.set()
        await holder.wait_idle()
        await other.wait_idle()


async def test_admin_jobs_shows_runs_durations_and_failures(
    tenant: Tenant, app_runtime: Runtime
) -> None:
    name = unique("job.flaky")
    outcomes = iter([None, RuntimeError("mailbox unreachable")])

    async def job() -> None:
        failure = next(outcomes)
        if failure is not None:
            raise failure

    scheduler = scheduler_of(app_runtime)
    scheduler.register(name, 600, job)
    try:
        assert await scheduler.run_now(name) is True
        assert await scheduler.run_now(name) is False
        jobs = data(await tenant.get("/v1/admin/jobs"))
        state = next(j for j in jobs if j["name"] == name)
        assert state["intervalSeconds"] == 600
        assert state["runs24h"] == 2 and state["failures24h"] == 1
        assert state["lastRun"]["ok"] is False
        assert state["lastRun"]["error"] == "RuntimeError: mailbox unreachable"
        assert state["lastRun"]["durationMs"] >= 0
        assert state["lastFailure"]["error"] == state["lastRun"]["error"]
        assert [r["ok"] for r in state["recentRuns"]] == [False, True]
        assert "attachments.orphan_sweep" in {j["name"] for j in jobs}
    finally:
        scheduler.jobs.pop(name)

    agent = await add_agent(app_runtime, tenant, role="manager")
    error(await tenant.get("/v1/admin/jobs", token=agent.token), 403, "FORBIDDEN")


async def test_orphan_sweep_job_runs(app_runtime: Runtime) -> None:
    scheduler = scheduler_of(app_runtime)
    assert scheduler.jobs["attachments.orphan_sweep"].interval_seconds == 3600
    assert await scheduler.run_now("attachments.orphan_sweep") is True


@pytest.mark.postgres
def test_three_worker_processes_on_postgres_run_each_tick_once(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    require(postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    db_name = f"enque_jobs_{os.getpid()}_{unique('w').replace('-', '_')}"
    url = create_pg_database(db_name)
    try:
        env = {
            **os.environ,
            **base_env,
            "DATABASE_URL": url,
            "JOB_INTERVALS": "attachments.orphan_sweep=1",
            "STORAGE_URL": f"file://{tmp_path / 'files'}",
        }
        subprocess.run(
            [sys.executable, "-m", "enque.cli", "db", "upgrade"], env=env, check=True, timeout=120
        )
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "enque.cli", "worker"],
                env=env,
                stdout=(tmp_path / f"worker{i}.log").open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for i in range(3)
        ]
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                started = [
                    "running the scheduler" in (tmp_path / f"worker{i}.log").read_text()
                    for i in range(3)
                ]
                if all(started):
                    break
                time.sleep(0.2)
            time.sleep(6)
            os.kill(workers[0].pid, signal.SIGKILL)  # a crash: its lease (if any) must expire
            workers[0].wait(10)
            time.sleep(4)
        finally:
            for proc in workers[1:]:
                os.kill(proc.pid, signal.SIGTERM)
            for proc in workers[1:]:
                proc.wait(30)
        runs = asyncio.run(_pg_runs(url))
    finally:
        drop_pg_database(db_name)

    logs = "\n".join(p.read_text() for p in tmp_path.glob("worker*.log"))
    assert len(runs) >= 5, logs
    ticks = [tick for tick, _, _, _ in runs]
    assert len(ticks) == len(set(ticks)), "a tick ran twice"
    for (_, _, previous_end, _), (_, start, _, _) in itertools.pairwise(runs):
        assert start >= previous_end, "two runs overlapped"
    first, last = ticks[0], ticks[-1]
    assert len(runs) <= (last - first) // 1000 + 1, "more runs than ticks"


async def _pg_runs(url: str) -> list[tuple[int, int, int, str]]:
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(JobRun.tick_ms, JobRun.started_ms, JobRun.finished_ms, JobRun.holder)
                .where(JobRun.job == "attachments.orphan_sweep")
                .order_by(JobRun.started_ms)
            )
            return [tuple(r) for r in rows.all()]  # type: ignore[misc]
    finally:
        await engine.dispose()
