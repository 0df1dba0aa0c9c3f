"""Inbox list latency on a large workspace, beside a ceiling measured in the same run.

Seeds one workspace with N tickets (bulk inserts), starts the real server (`enque serve`) and
sends requests at a fixed concurrency. The ceiling is `GET /v1/auth/me` (token check and one
small query): what the stack costs before the list does any work.

    .venv/bin/python bench/ticket_list.py                         # SQLite, 100,000 tickets
    .venv/bin/python bench/ticket_list.py --db postgres --search  # PostgreSQL, with `q`
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from enque.auth.service import create_workspace_with_admin  # noqa: E402
from enque.config import Settings  # noqa: E402
from enque.core.migrate import upgrade_sync  # noqa: E402
from enque.core.runtime import Runtime  # noqa: E402
from enque.core.security import issue_token  # noqa: E402
from enque.seeding import RARE_WORD, seed_workspace  # noqa: E402
from tests.support.services import free_port  # noqa: E402


def _psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-c", sql],
        check=True,
        capture_output=True,
    )


async def seed(settings: Settings, count: int, search: bool) -> tuple[str, str]:
    """One workspace with `count` tickets built by `enque seed-demo`'s seeding (five comments
    a ticket on average); returns (token, workspace id)."""
    runtime = Runtime.build(settings)
    try:
        async with runtime.db.session() as session:
            admin, workspace = await create_workspace_with_admin(
                session,
                email="bench@example.com",
                password="bench-password-1",
                display_name="Bench",
                workspace_name="Bench",
                subdomain="bench",
            )
        ws = workspace.id
        await seed_workspace(
            runtime,
            ws,
            tickets=count,
            search=search,
            progress=lambda n: print(f"  seeded {n:>7} tickets", end="\r", flush=True),
        )
        async with runtime.db.transaction() as session:
            # the signed-in agent holds a share of the tickets, for `assigneeId=me`
            await session.execute(
                text(
                    "UPDATE tickets SET assignee_id = :a WHERE workspace_id = :w "
                    "AND number % 11 = 0"
                ),
                {"a": admin.id, "w": ws},
            )
        token, _ = issue_token(
            secret=settings.resolved_secret_key(),
            agent_id=admin.id,
            workspace_id=ws,
            role="admin",
            token_version=0,
            lifetime=86400,
        )
        return token, ws
    finally:
        await runtime.close()


async def measure(
    url: str, token: str, path: str, concurrency: int, requests: int
) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=30
    ) as client:
        first = await client.get(path)
        assert first.status_code == 200, first.text
        for _ in range(20):
            await client.get(path)
        latencies: list[float] = []
        queue = iter(range(requests))

        async def worker() -> None:
            for _ in queue:
                started = time.perf_counter()
                response = await client.get(path)
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "rps": requests / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--search", action="store_true", help="index documents and measure `q`")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        pg_name = f"enque_bench_{os.getpid()}"
        if args.db == "postgres":
            _psql(f"CREATE DATABASE {pg_name}")
            database_url = f"postgresql://postgres@127.0.0.1:5432/{pg_name}"
        else:
            database_url = f"sqlite:///{tmp}/bench.db"
        env = {
            "DATABASE_URL": database_url,
            "DATA_DIR": tmp,
            "ENV": "development",
            "SECRET_KEY": secrets.token_hex(32),
            "ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "RATE_LIMIT_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
            "SCHEDULER_ENABLED": "false",
        }
        server = None
        try:
            settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})
            upgrade_sync(settings)
            began = time.perf_counter()
            token, _ = asyncio.run(seed(settings, args.tickets, args.search))
            print(
                f"seeded {args.tickets} tickets in {time.perf_counter() - began:.0f} s on {args.db}"
            )
            port = free_port()
            server = subprocess.Popen(
                [sys.executable, "-m", "enque.cli", "serve", "--port", str(port), "--no-demo"],
                env={**os.environ, **env},
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
            )
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            scenarios = {
                "ceiling: GET /v1/auth/me": "/v1/auth/me",
                "inbox, first page": "/v1/tickets",
                "status Open + In Progress": "/v1/tickets?status=Open&status=In%20Progress",
                "assigneeId=me, Open": "/v1/tickets?assigneeId=me&status=Open",
                "sort=priority": "/v1/tickets?sort=priority",
                "sort=dueAt": "/v1/tickets?sort=dueAt",
                "tag=vip": "/v1/tickets?tag=vip",
            }
            if args.search:
                scenarios["q, two common words"] = "/v1/tickets?q=printer%20refund"
                scenarios["q, one rare word"] = f"/v1/tickets?q={RARE_WORD}"
            print(f"{args.concurrency} concurrent, {args.requests} requests each, limit 50\n")
            print(f"{'scenario':32} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'p99/ceiling':>12}")
            ceiling = None
            for name, path in scenarios.items():
                figures = asyncio.run(measure(url, token, path, args.concurrency, args.requests))
                ceiling = ceiling or figures["p99"]
                print(
                    f"{name:32} {figures['p50']:8.1f} {figures['p99']:8.1f} "
                    f"{figures['rps']:8.0f} {figures['p99'] / ceiling:12.2f}"
                )
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
            if args.db == "postgres":
                _psql(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
