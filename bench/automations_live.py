"""Automations on the real service, each beside a ceiling measured in the same run.

1. `POST /v1/tickets` requests/s and p50/p99 with 50 active `ticket.created` rules, beside the
   same server and workspace with none (the rules run after commit, in the request's path).
2. One time-rules tick ("With User for 72 h → Closed") on a workspace of `--tickets` tickets
   built by `enque seed-demo`'s seeding: wall time of `run_time_rules`, beside its candidate
   query alone.

    .venv/bin/python -m bench.automations_live [--tickets 100000] [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from typing import Any

import httpx
from sqlalchemy import update

from bench.harness import bench_env, scratch_dir, start_enque
from enque.activity.service import Actor
from enque.auth.service import create_workspace_with_admin
from enque.automations import service as automations
from enque.automations.schemas import AutomationIn
from enque.automations.timerules import candidate_query, due_rules, run_time_rules
from enque.config import Settings
from enque.core.db import now
from enque.core.migrate import upgrade_sync
from enque.core.runtime import Runtime
from enque.seeding import seed_workspace
from enque.tickets.models import Ticket

WORDS = ["invoice", "refund", "outage", "password", "login", "printer", "urgent", "billing"]


def rule(n: int) -> dict[str, Any]:
    word = WORDS[n % len(WORDS)]
    return {
        "name": f"Rule {n}",
        "trigger": "ticket.created",
        "match": "any" if n % 2 else "all",
        "conditions": [
            {"field": "subject", "operator": "contains", "value": word},
            {"field": "priority", "operator": "is", "value": "High" if n % 3 else "Low"},
        ],
        "actions": [{"type": "add_tag", "value": f"r{n}"}],
    }


async def post_tickets(url: str, token: str, requests: int, concurrency: int) -> dict[str, float]:
    run = secrets.token_hex(3)
    latencies: list[float] = []
    queue = iter(range(requests))
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:

        async def worker() -> None:
            for n in queue:
                body = {
                    "subject": f"{WORDS[n % len(WORDS)]} problem {n}",
                    "body": "<p>The printer is on fire, please send an invoice</p>",
                    "priority": "High" if n % 2 else "Low",
                    "customer": {"email": f"c-{run}-{n}@example.com", "name": "Casey"},
                }
                began = time.perf_counter()
                response = await client.post("/v1/tickets", json=body)
                latencies.append((time.perf_counter() - began) * 1000)
                assert response.status_code == 201, response.text

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": requests / elapsed,
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def bench_rules_on_create(requests: int, concurrency: int) -> None:
    server = start_enque(bench_env(scratch_dir()))
    try:
        registered = httpx.post(
            server.url + "/v1/auth/register",
            json={
                "email": "bench@example.com",
                "password": "bench-password-1",
                "displayName": "Bench",
                "workspaceName": "Bench",
                "subdomain": "bench",
            },
            timeout=60,
        )
        token = registered.json()["data"]["token"]
        headers = {"Authorization": f"Bearer {token}"}
        asyncio.run(post_tickets(server.url, token, 30, concurrency))  # warm-up
        without = asyncio.run(post_tickets(server.url, token, requests, concurrency))
        for n in range(50):
            made = httpx.post(
                server.url + "/v1/automations", json=rule(n), headers=headers, timeout=60
            )
            assert made.status_code == 201, made.text
        with_rules = asyncio.run(post_tickets(server.url, token, requests, concurrency))
    finally:
        server.stop()
    print(f"POST /v1/tickets, {requests} requests, {concurrency} concurrent, 1 worker, SQLite")
    print(f"{'':28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, figures in (("no rule (ceiling)", without), ("50 active rules", with_rules)):
        print(f"{name:28} {figures['rps']:8.1f} {figures['p50']:8.1f} {figures['p99']:8.1f}")
    print(f"ratio with/without: {with_rules['rps'] / without['rps']:.2f}\n")


def bench_time_tick(count: int) -> None:
    env = bench_env(scratch_dir())
    names = set(Settings.model_fields)
    settings = Settings(
        _env_file=None, **{k.lower(): v for k, v in env.items() if k.lower() in names}
    )
    upgrade_sync(settings)
    asyncio.run(_time_tick(settings, count))


async def _time_tick(settings: Settings, count: int) -> None:
    runtime = Runtime.build(settings)
    from enque.app import create_app

    create_app(settings, runtime=runtime)  # registers the domains' services on this runtime
    try:
        async with runtime.db.session() as session:
            admin, workspace = await create_workspace_with_admin(
                session,
                email="tick@example.com",
                password="bench-password-1",
                display_name="Tick",
                workspace_name="Tick",
                subdomain="tick",
            )
        began = time.perf_counter()
        await seed_workspace(
            runtime, workspace.id, tickets=count, comments_per_ticket=1, search=False
        )
        print(f"seeded {count:,} tickets in {time.perf_counter() - began:.0f} s")
        async with runtime.db.transaction() as session:
            # a realistic backlog: the With User tickets untouched for four days
            await session.execute(
                update(Ticket)
                .where(Ticket.workspace_id == workspace.id, Ticket.status == "With User")
                .values(updated_at=now() - 4 * 86400)
            )
        async with runtime.db.transaction() as session:
            await automations.create_automation(
                session,
                workspace_id=workspace.id,
                actor=Actor("agent", admin.id),
                data=AutomationIn.model_validate(
                    {
                        "name": "Close waiting tickets",
                        "trigger": "time.elapsed",
                        "triggerConfig": {"hours": 72, "field": "updated"},
                        "conditions": [{"field": "status", "operator": "is", "value": "With User"}],
                        "actions": [{"type": "set_status", "value": "Closed"}],
                    }
                ),
            )
        [(workspace_id, time_rule)] = await due_rules(runtime)
        query = candidate_query(time_rule, workspace_id=workspace_id, now=now(), limit=500)
        samples = []
        for _ in range(5):
            began = time.perf_counter()
            async with runtime.db.session(write=False) as session:
                await session.execute(query)
            samples.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        report = await run_time_rules(runtime)
        tick = time.perf_counter() - began
    finally:
        await runtime.close()
    print(f"time rules on {count:,} tickets, SQLite")
    print(f"candidate query alone (ceiling), median of 5: {statistics.median(samples):.1f} ms")
    print(f"one tick: {tick * 1000:.0f} ms, {report}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    bench_rules_on_create(args.requests, args.concurrency)
    bench_time_tick(args.tickets)


if __name__ == "__main__":
    main()
