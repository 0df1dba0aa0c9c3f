"""`GET /metrics`: Prometheus text, labels by route template, summed over worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from enque.core.db import new_id
from enque.core.metrics import forget_dead_workers
from tests.support.api import Tenant, register
from tests.support.realtime import Socket
from tests.support.server import ServerProcess


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


async def test_requests_are_counted_by_route_template(tenant: Tenant) -> None:
    unknown = new_id()
    assert (await tenant.get(f"/v1/tickets/{unknown}")).status_code == 404
    assert (await tenant.get(f"/no-such-page-{unknown}")).status_code == 404
    assert (await tenant.get("/v1/auth/me")).status_code == 200
    response = await tenant.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert unknown not in response.text  # ids never become labels
    counted = _samples(response.text, "enque_http_requests_total")
    routes = {(labels["route"], labels["status"]) for labels, _ in counted}
    assert ("/v1/tickets/{ticket_id}", "404") in routes
    assert ("<unmatched>", "404") in routes
    assert ("/v1/auth/me", "200") in routes
    buckets = _samples(response.text, "enque_http_request_duration_seconds_bucket")
    assert any(labels["route"] == "/v1/auth/me" for labels, _ in buckets)
    pools = {
        labels["pool"] for labels, _ in _samples(response.text, "enque_db_pool_connections_in_use")
    }
    assert pools == {"read", "write"}
    queues = {labels["queue"] for labels, _ in _samples(response.text, "enque_queue_depth")}
    assert {"outbound_email", "scheduled_replies_due"} <= queues
    assert _samples(response.text, "enque_websocket_connections")


async def test_workers_are_summed_and_the_token_is_required(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **base_env,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'metrics.db'}",
        "DATA_DIR": str(tmp_path),
        "ENQUE_TEST_LOGS": str(tmp_path),
        "METRICS_TOKEN": "scrape-secret",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = ServerProcess(env, workers=2).start(timeout=120)
    scrape = {"Authorization": "Bearer scrape-secret"}
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            for _ in range(30):
                async with httpx.AsyncClient(base_url=server.url, timeout=10) as fresh:
                    assert (await fresh.get("/v1/openapi.json")).status_code == 200
            refused = await client.get("/metrics")
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "UNAUTHORIZED"
            wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            for _ in range(4):  # whichever worker answers, it reports every worker's requests
                text = (await client.get("/metrics", headers=scrape)).text
                served = sum(
                    value
                    for labels, value in _samples(text, "enque_http_requests_total")
                    if labels["route"] == "/v1/openapi.json"
                )
                assert served == 30, text
            # sockets land on either worker; every scrape counts all of them
            tenant = await register(client)
            url = server.url.replace("http://", "ws://") + "/v1/realtime"
            sockets = [await Socket.ready(url, tenant.token) for _ in range(4)]
            for _ in range(4):
                text = (await client.get("/metrics", headers=scrape)).text
                assert _samples(text, "enque_websocket_connections") == [({}, 4.0)], text
            for sock in sockets:
                await sock.ws.close()
    finally:
        server.stop()
    assert list((tmp_path / "metrics").glob("*.db")), "workers wrote to the shared folder"
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


_WORKER = """
import sys, time
from prometheus_client import Gauge
Gauge("sockets", "open sockets", multiprocess_mode="livesum").set(int(sys.argv[1]))
print("set", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_dead_workers_live_gauges_are_forgotten(tmp_path: Path) -> None:
    """A worker killed without a word leaves its gauge file behind; scrapes drop it, and keep
    the ones of workers still running."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    gone = subprocess.run(
        [sys.executable, "-c", _WORKER, "7", "0"], env=env, capture_output=True, check=True
    )
    assert gone.stdout.strip() == b"set"
    alive = subprocess.Popen(
        [sys.executable, "-c", _WORKER, "5", "60"], env=env, stdout=subprocess.PIPE
    )
    try:
        assert alive.stdout is not None and alive.stdout.readline().strip() == b"set"
        assert len(list(tmp_path.glob("gauge_livesum_*.db"))) == 2
        forget_dead_workers(str(tmp_path))
        assert [p.name for p in tmp_path.glob("gauge_livesum_*.db")] == [
            f"gauge_livesum_{alive.pid}.db"
        ]
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
        assert registry.get_sample_value("sockets") == 5
    finally:
        alive.kill()
        alive.wait()
