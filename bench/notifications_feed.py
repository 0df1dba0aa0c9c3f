"""The notification feed of an agent with a long history, beside a ceiling measured in the
same run (`GET /v1/auth/me`: token check and one small query).

Seeds one workspace with N notifications over 11 agents (the signed-in one holds a fifth of
them, 10 % unread), starts the real server and sends requests at a fixed concurrency.

    .venv/bin/python bench/notifications_feed.py                  # SQLite, 200,000 rows
    .venv/bin/python bench/notifications_feed.py --db postgres
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import bench_database, bench_env, get, measure, scratch_dir, start_enque  # noqa: E402
from enque.agents.models import Agent, AgentWorkspace  # noqa: E402
from enque.auth.service import create_workspace_with_admin  # noqa: E402
from enque.config import Settings  # noqa: E402
from enque.core.db import new_id, now  # noqa: E402
from enque.core.migrate import upgrade_sync  # noqa: E402
from enque.core.runtime import Runtime  # noqa: E402
from enque.core.security import issue_token  # noqa: E402
from enque.notifications.models import Notification  # noqa: E402

BATCH = 5000
EVENTS = ("ticket.assigned", "ticket.created", "customer.replied", "mention")


async def seed(settings: Settings, count: int) -> str:
    """One workspace, `count` notifications; returns the admin's token."""
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
        agents = [new_id() for _ in range(10)]
        everyone = [admin.id, *agents, *agents, *agents, *agents]  # the admin: one in five
        started = now() - 90 * 86400
        async with runtime.db.transaction() as session:
            await session.execute(
                insert(Agent),
                [
                    {"id": a, "email": f"agent{i}@example.com", "display_name": f"Agent {i}"}
                    for i, a in enumerate(agents)
                ],
            )
            await session.execute(
                insert(AgentWorkspace),
                [{"workspace_id": ws, "agent_id": a, "role": "agent"} for a in agents],
            )
            for start in range(0, count, BATCH):
                rows = []
                for i in range(start, min(count, start + BATCH)):
                    moment = started + i * 90 * 86400 // count
                    rows.append(
                        {
                            "id": new_id(),
                            "workspace_id": ws,
                            "agent_id": everyone[i % len(everyone)],
                            "event": EVENTS[i % len(EVENTS)],
                            "payload": {
                                "ticket": {"id": new_id(), "number": i, "subject": f"Ticket {i}"},
                                "actor": {"type": "agent", "id": agents[0], "name": "Agent 0"},
                            },
                            "in_feed": True,
                            "read_at": None if i % 10 == 0 else moment + 60,
                            "email_pending": False,
                            "created_at": moment,
                            "updated_at": moment,
                        }
                    )
                await session.execute(insert(Notification), rows)
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
        return token
    finally:
        await runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()

    data_dir = scratch_dir()
    with bench_database(args.db, data_dir, f"enque_bench_notif_{os.getpid()}") as database_url:
        env = bench_env(data_dir, DATABASE_URL=database_url)
        settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})
        upgrade_sync(settings)
        began = time.perf_counter()
        token = asyncio.run(seed(settings, args.rows))
        print(f"seeded {args.rows} notifications in {time.perf_counter() - began:.0f} s")
        server = start_enque(env)
        try:
            auth = {"Authorization": f"Bearer {token}"}
            deep = None
            for _ in range(21):  # a cursor 1,000 rows deep
                cursor = f"&cursor={deep}" if deep else ""
                page = httpx.get(f"{server.url}/v1/notifications?limit=50{cursor}", headers=auth)
                deep = page.json()["meta"]["nextCursor"]
            scenarios = {
                "ceiling: GET /v1/auth/me": "/v1/auth/me",
                "feed, first page": "/v1/notifications",
                "feed, 1,000 rows deep": f"/v1/notifications?cursor={deep}",
                "feed, unread only": "/v1/notifications?unread=true",
            }
            print(f"database {args.db}, {args.concurrency} concurrent, {args.requests} requests")
            print(f"{'scenario':28} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'p99/ceiling':>12}")
            ceiling = None
            for name, path in scenarios.items():
                figures = asyncio.run(
                    measure(server.url, token, get(path), args.concurrency, args.requests)
                )
                ceiling = ceiling or figures["p99"]
                print(
                    f"{name:28} {figures['p50']:8.1f} {figures['p99']:8.1f} "
                    f"{figures['rps']:8.0f} {figures['p99'] / ceiling:12.2f}"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
