"""Prometheus metrics: request latency by route, database pools, WebSocket connections, jobs and
mailbox syncs. With several worker processes (`enque serve --workers N`) every worker writes to
`PROMETHEUS_MULTIPROC_DIR` and `/metrics` answers the sum of all of them."""

from __future__ import annotations

import hmac
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as PROCESS_REGISTRY

from enque.core.errors import ApiError

if TYPE_CHECKING:
    from enque.core.runtime import Runtime

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
UNMATCHED = "<unmatched>"  # paths that hit no route share one label: no unbounded cardinality

REQUESTS = Counter(
    "enque_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
REQUEST_SECONDS = Histogram(
    "enque_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
DB_POOL_IN_USE = Gauge(
    "enque_db_pool_connections_in_use",
    "Database connections checked out of the pool",
    ["pool"],
    multiprocess_mode="livesum",
)
WEBSOCKETS = Gauge(
    "enque_websocket_connections", "Open real-time sockets", multiprocess_mode="livesum"
)
JOB_RUNS = Counter("enque_job_runs_total", "Scheduled job runs", ["job", "outcome"])
JOB_SECONDS = Histogram(
    "enque_job_duration_seconds", "Scheduled job run time", ["job"], buckets=LATENCY_BUCKETS
)
SYNC_SECONDS = Histogram(
    "enque_mailbox_sync_duration_seconds",
    "Mailbox sync run time",
    ["provider"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
SYNC_FAILURES = Counter("enque_mailbox_sync_failures_total", "Failed mailbox syncs", ["provider"])
# Queue depths are read from the database by whichever worker answers a scrape: the most
# recent reading is the true one (the maximum would keep a stale peak of another worker).
QUEUE_DEPTH = Gauge(
    "enque_queue_depth", "Work waiting (by queue)", ["queue"], multiprocess_mode="livemostrecent"
)

# Async probes run at scrape time (queue depths and the like), registered by domains as
# `runtime.services["metric_probes"]`: a list of `async (runtime) -> None` that set gauges.
MetricProbe = Callable[["Runtime"], Awaitable[None]]


# the labelled series of each (method, route, status): finding them is most of an observation
_REQUEST_SERIES: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    label = route or UNMATCHED
    series = _REQUEST_SERIES.get((method, label, status))
    if series is None:
        counter = REQUESTS.labels(method, label, str(status))
        series = (counter, REQUEST_SECONDS.labels(method, label))
        _REQUEST_SERIES[method, label, status] = series
    series[0].inc()
    series[1].observe(seconds)


def _pool_in_use(runtime: Runtime) -> None:
    engines = {"read": runtime.db.engine, "write": runtime.db.write_engine}
    for name, engine in engines.items():
        checked_out = getattr(engine.pool, "checkedout", None)
        if checked_out is not None:
            DB_POOL_IN_USE.labels(name).set(checked_out())


def forget_dead_workers(folder: str) -> None:
    """Drop the live gauges of workers that died without a word (SIGKILL, out of memory):
    their files would otherwise add their last sockets and pool use to every scrape."""
    for path in Path(folder).glob("gauge_live*_*.db"):
        pid_text = path.stem.rsplit("_", 1)[1]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, folder)
        except PermissionError:
            continue  # alive, another user's


def _registry() -> CollectorRegistry:
    if not MULTIPROCESS:
        return PROCESS_REGISTRY
    forget_dead_workers(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def install(app: FastAPI) -> None:
    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        runtime: Runtime = request.app.state.runtime
        expected = runtime.settings.metrics_token
        if expected:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), expected.encode()):
                raise ApiError("UNAUTHORIZED", "A valid metrics token is required")
        _pool_in_use(runtime)
        for probe in runtime.services.get("metric_probes", []):
            await probe(runtime)
        return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)
