"""One in-process scheduler for every periodic job, run once per tick across processes.

Domains register jobs from their hooks: `runtime.services["scheduler"].register(name,
interval_seconds, job)` (or `runtime.register_job(...)`), where `job` is a zero-argument
coroutine function. `enque serve` and `enque worker` start the loop (`SCHEDULER_ENABLED`).

Run-once: each job has a row in `job_leases` with the time of its next tick and a lease
expiry. A process claims a tick with one conditional `UPDATE` (the tick is due and nobody holds
an unexpired lease); only the process whose update changed the row runs it. The holder renews
its lease while the job runs and releases it at the end; a crashed holder's lease expires, and
the next process to look takes the job over. Works the same on SQLite and PostgreSQL (several
machines sharing the database). Each run is recorded in `job_runs` (`GET /v1/admin/jobs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, insert_on_conflict
from enque.core.metrics import JOB_RUNS, JOB_SECONDS

if TYPE_CHECKING:
    from enque.core.runtime import Runtime

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[Any]]
DEFAULT_LEASE_SECONDS = 60
POLL_SECONDS = 1.0
KEEP_RUNS_SECONDS = 7 * 24 * 3600
ERROR_LIMIT = 2000


def now_ms() -> int:
    return int(time.time() * 1000)


class JobLease(Base):
    """The next tick of a job and who holds it (until `lease_until_ms`)."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    interval_seconds: Mapped[int] = mapped_column(Integer)
    next_run_ms: Mapped[int] = mapped_column(BigInteger)
    holder: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_until_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)


class JobRun(IdMixin, Base):
    """One run of a job: when, where, how long, and how it ended."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_job_started", "job", "started_ms"),)

    job: Mapped[str] = mapped_column(String(100))
    tick_ms: Mapped[int] = mapped_column(BigInteger)
    holder: Mapped[str] = mapped_column(String(200))
    started_ms: Mapped[int] = mapped_column(BigInteger)
    finished_ms: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text, default=None)


@dataclass
class JobSpec:
    name: str
    interval_seconds: float
    job: Job
    lease_seconds: float = DEFAULT_LEASE_SECONDS


def interval_overrides(raw: str) -> dict[str, float]:
    """`JOB_INTERVALS="name=seconds,name=seconds"` → {name: seconds}."""
    out: dict[str, float] = {}
    for item in raw.split(","):
        name, _, value = item.partition("=")
        if name.strip() and value.strip():
            out[name.strip()] = float(value)
    return out


class Scheduler:
    """The jobs of this process and the loop that claims and runs their ticks."""

    def __init__(self, runtime: Runtime, *, holder: str | None = None) -> None:
        self.runtime = runtime
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.jobs: dict[str, JobSpec] = {}
        self.overrides = interval_overrides(getattr(runtime.settings, "job_intervals", "") or "")
        self._task: asyncio.Task[None] | None = None
        self._running: dict[str, asyncio.Task[bool]] = {}
        self._stopping = asyncio.Event()

    def register(
        self,
        name: str,
        interval_seconds: float,
        job: Job,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        interval = self.overrides.get(name, interval_seconds)
        self.jobs[name] = JobSpec(name, interval, job, lease_seconds)

    # ------------------------------------------------------------ claiming

    async def _ensure_rows(self, specs: list[JobSpec]) -> None:
        if not specs:
            return
        async with self.runtime.db.transaction() as session:
            for spec in specs:
                await session.execute(
                    insert_on_conflict(session, JobLease)
                    .values(
                        name=spec.name,
                        interval_seconds=max(1, round(spec.interval_seconds)),
                        next_run_ms=now_ms(),
                    )
                    .on_conflict_do_nothing(index_elements=["name"])
                )

    async def _claim(self, spec: JobSpec, tick: int) -> int | None:
        """Take the job's due tick; returns the tick (ms) when this process got it."""
        at = now_ms()
        async with self.runtime.db.transaction() as session:
            result = await session.execute(
                update(JobLease)
                .where(
                    JobLease.name == spec.name,
                    JobLease.next_run_ms == tick,
                    (JobLease.lease_until_ms.is_(None)) | (JobLease.lease_until_ms < at),
                )
                .values(
                    holder=self.holder,
                    lease_until_ms=at + int(spec.lease_seconds * 1000),
                    next_run_ms=max(tick + int(spec.interval_seconds * 1000), at + 1),
                    interval_seconds=max(1, round(spec.interval_seconds)),
                )
                .execution_options(synchronize_session=False)
            )
            claimed = getattr(result, "rowcount", 0) == 1
        return tick if claimed else None

    async def _renew(self, spec: JobSpec) -> None:
        while True:
            await asyncio.sleep(max(spec.lease_seconds / 3, 0.05))
            async with self.runtime.db.transaction() as session:
                await session.execute(
                    update(JobLease)
                    .where(JobLease.name == spec.name, JobLease.holder == self.holder)
                    .values(lease_until_ms=now_ms() + int(spec.lease_seconds * 1000))
                )

    # ------------------------------------------------------------ running

    async def _execute(self, spec: JobSpec, tick: int) -> bool:
        started = now_ms()
        clock = time.perf_counter()
        renew = asyncio.create_task(self._renew(spec))
        error: str | None = None
        try:
            await spec.job()
        except asyncio.CancelledError:
            error = "cancelled at shutdown"
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:ERROR_LIMIT]
            log.exception("job %s failed", spec.name)
        finally:
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renew
            elapsed = time.perf_counter() - clock
            duration = int(elapsed * 1000)
            JOB_RUNS.labels(spec.name, "failed" if error else "ok").inc()
            JOB_SECONDS.labels(spec.name).observe(elapsed)
            try:
                await asyncio.shield(self._finish(spec, tick, started, duration, error))
            except Exception:
                log.exception("could not record the run of %s", spec.name)
        return error is None

    async def _finish(
        self, spec: JobSpec, tick: int, started: int, duration: int, error: str | None
    ) -> None:
        async with self.runtime.db.transaction() as session:
            session.add(
                JobRun(
                    job=spec.name,
                    tick_ms=tick,
                    holder=self.holder,
                    started_ms=started,
                    finished_ms=started + duration,
                    duration_ms=duration,
                    ok=error is None,
                    error=error,
                )
            )
            await session.execute(
                delete(JobRun).where(
                    JobRun.job == spec.name, JobRun.started_ms < started - KEEP_RUNS_SECONDS * 1000
                )
            )
            await session.execute(
                update(JobLease)
                .where(JobLease.name == spec.name, JobLease.holder == self.holder)
                .values(holder=None, lease_until_ms=None)
            )

    async def _leases(self) -> dict[str, tuple[int, int | None]]:
        async with self.runtime.db.session(write=False) as session:
            result = await session.execute(
                select(JobLease.name, JobLease.next_run_ms, JobLease.lease_until_ms)
            )
            return {name: (next_run, lease_until) for name, next_run, lease_until in result.all()}

    async def run_due(self) -> list[str]:
        """One pass: claim every due tick this process can take and start those jobs."""
        rows = await self._leases()
        missing = [spec for spec in self.jobs.values() if spec.name not in rows]
        if missing:
            await self._ensure_rows(missing)
            rows = await self._leases()
        started = []
        at = now_ms()
        for spec in list(self.jobs.values()):
            if spec.name in self._running or spec.name not in rows:
                continue
            next_run, lease_until = rows[spec.name]
            if next_run > at or (lease_until is not None and lease_until >= at):
                continue
            tick = await self._claim(spec, next_run)
            if tick is None:
                continue
            task = asyncio.create_task(self._execute(spec, tick), name=f"job:{spec.name}")
            self._running[spec.name] = task
            task.add_done_callback(self._forget(spec.name))
            started.append(spec.name)
        return started

    def _forget(self, name: str) -> Callable[[asyncio.Task[bool]], None]:
        def done(_: asyncio.Task[bool]) -> None:
            self._running.pop(name, None)

        return done

    async def run_now(self, name: str) -> bool:
        """Run one job here and now, whatever its schedule (tests, `POST …/run`)."""
        spec = self.jobs[name]
        return await self._execute(spec, now_ms())

    async def wait_idle(self) -> None:
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_due()
            except Exception:
                log.exception("scheduler pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), POLL_SECONDS)

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def stop(self, grace_seconds: float = 10) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        running = list(self._running.values())
        if running:
            _, pending = await asyncio.wait(running, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        # one statement for every lease this process holds: with the database down, shutdown
        # waits for one connect timeout, not one per job (the leases then simply expire)
        with contextlib.suppress(Exception):
            async with self.runtime.db.transaction() as session:
                await session.execute(
                    update(JobLease)
                    .where(JobLease.holder == self.holder)
                    .values(holder=None, lease_until_ms=None)
                )


def scheduler_of(runtime: Runtime) -> Scheduler:
    """The process's scheduler (made on first use)."""
    scheduler: Scheduler | None = runtime.services.get("scheduler")
    if scheduler is None:
        scheduler = Scheduler(runtime)
        runtime.services["scheduler"] = scheduler
    return scheduler
