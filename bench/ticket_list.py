"""Ticket routes on a large workspace, beside a ceiling measured in the same run.

Seeds one workspace with `enque seed-demo`'s seeding (N tickets, five comments a ticket on
average; ticket #1 gets a 200-comment thread), starts the real server (`enque serve`, 1 worker)
and sends requests at each concurrency level: the inbox with filters and sorts, the inbox 1,000
pages deep, ticket detail and thread, ticket and note creation, search. The ceiling is the same
framework on the same server stack serving the first inbox page's bytes precomputed; `GET
/v1/auth/me` (token check only) is shown beside it.

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
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from sqlalchemy import delete, insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import start_bare  # noqa: E402
from enque.auth.service import create_workspace_with_admin  # noqa: E402
from enque.comments.models import Comment  # noqa: E402
from enque.config import Settings  # noqa: E402
from enque.core.db import new_id, now  # noqa: E402
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


async def seed(settings: Settings, count: int, search: bool) -> tuple[str, str, str]:
    """One workspace with `count` tickets built by `enque seed-demo`'s seeding (five comments
    a ticket on average) and ticket #1 holding a 200-comment thread; returns (token, workspace
    id, id of ticket #1)."""
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
            long_thread = await session.scalar(
                text("SELECT id FROM tickets WHERE workspace_id = :w AND number = 1"), {"w": ws}
            )
            await session.execute(delete(Comment).where(Comment.ticket_id == long_thread))
            started = now() - 86400
            await session.execute(
                insert(Comment.__table__),
                [
                    {
                        "id": new_id(),
                        "workspace_id": ws,
                        "ticket_id": long_thread,
                        "kind": "reply" if n % 2 else "customer",
                        "author_type": "agent" if n % 2 else "user",
                        "author_id": admin.id if n % 2 else None,
                        "content": f"<p>message {n} of a long thread</p>",
                        "text": f"message {n} of a long thread",
                        "to": [],
                        "cc": [],
                        "bcc": [],
                        "mentions": [],
                        "created_at": started + n * 60,
                        "updated_at": started + n * 60,
                    }
                    for n in range(200)
                ],
            )
        async with runtime.db.session() as session:
            await session.execute(text("ANALYZE"))
            await session.commit()
        token, _ = issue_token(
            secret=settings.resolved_secret_key(),
            agent_id=admin.id,
            workspace_id=ws,
            role="admin",
            token_version=0,
            lifetime=86400,
        )
        return token, ws, str(long_thread)
    finally:
        await runtime.close()


Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


def get(path: str) -> Request:
    async def send(client: httpx.AsyncClient, _: int) -> httpx.Response:
        return await client.get(path)

    return send


async def measure(
    url: str, token: str, request: Request, concurrency: int, requests: int
) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=30
    ) as client:
        for n in range(20):  # warm-up
            response = await request(client, -1 - n)
            assert response.status_code < 300, response.text
        latencies: list[float] = []
        queue = iter(range(requests))

        async def worker() -> None:
            for n in queue:
                started = time.perf_counter()
                response = await request(client, n)
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status_code < 300, response.text

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "rps": requests / elapsed,
    }


async def deep_cursor(url: str, token: str, pages: int) -> str:
    """The cursor `pages` pages into the default inbox (followed page by page)."""
    headers = {"Authorization": f"Bearer {token}"}
    cursor = None
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        for _ in range(pages):
            params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
            body = (await client.get("/v1/tickets", params=params)).json()
            cursor = body["meta"]["nextCursor"]
            assert cursor, "fewer tickets than pages asked"
    return str(cursor)


def scenarios(token: str, long_thread: str, deep: str | None) -> dict[str, Request]:
    run = secrets.token_hex(3)

    async def create(client: httpx.AsyncClient, n: int) -> httpx.Response:
        body = {
            "subject": f"Bench ticket {n}",
            "body": "<p>The printer is on fire again</p>",
            "customer": {"email": f"bench-{run}-{n}@example.com", "name": "Bench Customer"},
        }
        return await client.post("/v1/tickets", json=body)

    async def note(client: httpx.AsyncClient, n: int) -> httpx.Response:
        body = {"content": f"<p>internal note {n}</p>"}
        return await client.post(f"/v1/tickets/{long_thread}/notes", json=body)

    found: dict[str, Request] = {
        "inbox, first page": get("/v1/tickets"),
        "status Open + In Progress": get("/v1/tickets?status=Open&status=In%20Progress"),
        "assigneeId=me, Open": get("/v1/tickets?assigneeId=me&status=Open"),
        "sort=priority": get("/v1/tickets?sort=priority"),
        "sort=dueAt": get("/v1/tickets?sort=dueAt"),
        "tag=vip": get("/v1/tickets?tag=vip"),
    }
    if deep:
        found["inbox, 1,000 pages deep"] = get(f"/v1/tickets?cursor={deep}")
    found["ticket detail (200-comment thread)"] = get(f"/v1/tickets/{long_thread}")
    found["thread, first 50 of 200"] = get(f"/v1/tickets/{long_thread}/comments?limit=50")
    found["POST /v1/tickets"] = create
    found["POST /v1/tickets/{id}/notes"] = note
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--concurrency", default="10,50", help="comma-separated levels")
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
            token, _, long_thread = asyncio.run(seed(settings, args.tickets, args.search))
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
            page = httpx.get(
                f"{url}/v1/tickets", headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            page_file = Path(tmp) / "page.json"
            page_file.write_bytes(page.content)  # the ceiling serves these very bytes
            bare = start_bare(page_file)
            deep = asyncio.run(deep_cursor(url, token, 1000)) if args.tickets >= 50_050 else None
            found = scenarios(token, long_thread, deep)
            if args.search:
                found["q, two common words"] = get("/v1/tickets?q=printer%20refund")
                found["q, one rare word"] = get(f"/v1/tickets?q={RARE_WORD}")
            print(f"{args.tickets:,} tickets on {args.db}; {args.requests} requests per row\n")
            for concurrency in [int(c) for c in args.concurrency.split(",")]:
                print(f"{concurrency} concurrent connections")
                print(
                    f"{'scenario':36} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'p99/ceiling':>12}"
                )
                ceiling = asyncio.run(
                    measure(bare.url, token, get("/page"), concurrency, args.requests)
                )
                rows = [("ceiling: bare FastAPI, same page", ceiling)]
                rows.append(
                    (
                        "GET /v1/auth/me",
                        asyncio.run(
                            measure(url, token, get("/v1/auth/me"), concurrency, args.requests)
                        ),
                    )
                )
                for name, request in found.items():
                    figures = asyncio.run(measure(url, token, request, concurrency, args.requests))
                    rows.append((name, figures))
                for name, figures in rows:
                    print(
                        f"{name:36} {figures['p50']:8.1f} {figures['p99']:8.1f} "
                        f"{figures['rps']:8.0f} {figures['p99'] / ceiling['p99']:12.2f}"
                    )
                print()
            bare.stop()
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
            if args.db == "postgres":
                _psql(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
