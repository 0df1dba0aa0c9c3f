"""Automations on the real service, each beside a ceiling measured in the same run.

1. `POST /v1/tickets` requests/s and p50/p99 in a workspace with 50 active `ticket.created`
   rules (about 15 of them fire on each ticket), beside a workspace with none on the same
   server, the requests alternating between the two (the rules run after commit, in the
   request's path). Then the SQL statements each request runs (the app in this process), a
   figure the machine's load does not move.
2. One time-rules tick ("With User for 72 h → Closed") on a workspace of `--tickets` tickets
   built by `enque seed-demo`'s seeding, every With User ticket four days old (8 % of them):
   wall time of `run_time_rules`, beside its candidate query alone and beside one bare SQL
   `UPDATE` closing the same tickets (rolled back), the floor of any way to close them.

    .venv/bin/python bench/automations_live.py [--db postgres] [--tickets 100000]
        [--requests 300] [--rounds 5] [--concurrency 10] [--only requests|statements|tick]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, func, select, update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import bench_env, scratch_dir, start_enque
from enque.activity.service import Actor
from enque.auth.service import create_workspace_with_admin
from enque.automations import service as automations
from enque.automations.schemas import AutomationIn
from enque.automations.timerules import candidate_query, due_rules, run_time_rules
from enque.config import Settings
from enque.core.db import now
from enque.core.events import Event
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


@dataclass
class Load:
    """Requests sent to one workspace: their latencies and the wall time they took."""

    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    def row(self, name: str) -> str:
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (
            f"{name:28} {len(ordered) / self.elapsed:8.1f} "
            f"{statistics.median(ordered):8.1f} {p99:8.1f}"
        )

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed


async def post_tickets(
    client: httpx.AsyncClient, token: str, requests: int, concurrency: int, load: Load
) -> None:
    run = secrets.token_hex(3)
    queue = iter(range(requests))
    headers = {"Authorization": f"Bearer {token}"}

    async def worker() -> None:
        for n in queue:
            body = {
                "subject": f"{WORDS[n % len(WORDS)]} problem {n}",
                "body": "<p>The printer is on fire, please send an invoice</p>",
                "priority": "High" if n % 2 else "Low",
                "customer": {"email": f"c-{run}-{n}@example.com", "name": "Casey"},
            }
            began = time.perf_counter()
            response = await client.post("/v1/tickets", json=body, headers=headers)
            load.latencies.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 201, response.text

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    load.elapsed += time.perf_counter() - began


async def workspaces(client: httpx.AsyncClient) -> tuple[str, str]:
    """Tokens of two new workspaces: one without rules, one with the 50 rules."""
    tokens = []
    for name in ("plain", "ruled"):
        registered = await client.post(
            "/v1/auth/register",
            json={
                "email": f"{name}@example.com",
                "password": "bench-password-1",
                "displayName": name,
                "workspaceName": name,
                "subdomain": name,
            },
        )
        tokens.append(str(registered.json()["data"]["token"]))
    for n in range(50):
        made = await client.post(
            "/v1/automations", json=rule(n), headers={"Authorization": f"Bearer {tokens[1]}"}
        )
        assert made.status_code == 201, made.text
    for token in tokens:  # warm-up
        await post_tickets(client, token, 20, 1, Load())
    return tokens[0], tokens[1]


def database(db: str, name: str) -> tuple[dict[str, str], Callable[[], None]]:
    """Environment overrides for `db`, and how to drop what was made."""
    if db != "postgres":
        return {}, lambda: None
    from tests.support.services import create_pg_database, drop_pg_database

    return {"DATABASE_URL": create_pg_database(name)}, lambda: drop_pg_database(name)


def settings_of(env: dict[str, str]) -> Settings:
    names = set(Settings.model_fields)
    return Settings(_env_file=None, **{k.lower(): v for k, v in env.items() if k.lower() in names})


def bench_rules_on_create(db: str, requests: int, concurrency: int, rounds: int) -> None:
    """Two workspaces on one server, one with the 50 rules; the requests alternate between
    them in `rounds` rounds, so that a change of the machine's load weighs on both alike."""
    overrides, drop = database(db, "enque_bench_automations_create")
    server = start_enque(bench_env(scratch_dir(), **overrides))

    async def run() -> tuple[Load, Load]:
        without, with_rules = Load(), Load()
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            plain, ruled = await workspaces(client)
            for _ in range(rounds):
                await post_tickets(client, plain, requests // rounds, concurrency, without)
                await post_tickets(client, ruled, requests // rounds, concurrency, with_rules)
        return without, with_rules

    try:
        without, with_rules = asyncio.run(run())
    finally:
        server.stop()
        drop()
    print(
        f"POST /v1/tickets, {requests} requests per workspace in {rounds} alternating rounds, "
        f"{concurrency} concurrent, 1 worker, {db}"
    )
    print(f"{'':28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    print(without.row("no rule (ceiling)"))
    print(with_rules.row("50 active rules"))
    print(f"ratio with/without: {with_rules.rps / without.rps:.2f}\n")


def bench_statements(db: str, requests: int) -> None:
    """SQL statements per `POST /v1/tickets` (the app in this process, one request at a time):
    a figure the machine's load does not move."""
    overrides, drop = database(db, "enque_bench_automations_sql")
    settings = settings_of(bench_env(scratch_dir(), **overrides))
    try:
        upgrade_sync(settings)
        counts = asyncio.run(_statements(settings, requests))
    finally:
        drop()
    print(
        f"SQL statements per POST /v1/tickets ({requests} requests each, {db}), reactions included"
    )
    print(f"no rule (ceiling): {counts[0]:.1f}, 50 active rules: {counts[1]:.1f}\n")


async def _statements(settings: Settings, requests: int) -> list[float]:
    from enque.app import create_app

    app = create_app(settings)
    runtime: Runtime = app.state.runtime
    engines = {runtime.db.engine.sync_engine, runtime.db.write_engine.sync_engine}
    executed = [0]

    def count(*_: Any) -> None:
        executed[0] += 1

    counts = []
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):
        for token in await workspaces(client):
            executed[0] = 0
            for engine in engines:
                event.listen(engine, "before_cursor_execute", count)
            await post_tickets(client, token, requests, 1, Load())
            for engine in engines:
                event.remove(engine, "before_cursor_execute", count)
            counts.append(executed[0] / requests)
    return counts


def bench_time_tick(db: str, count: int) -> None:
    overrides, drop = database(db, "enque_bench_automations_tick")
    settings = settings_of(bench_env(scratch_dir(), **overrides))
    try:
        upgrade_sync(settings)
        asyncio.run(_time_tick(settings, db, count))
    finally:
        drop()


def timed_reactions(runtime: Runtime) -> Counter[str]:
    """Wrap the reactions (automations, notifications, webhooks, SLA, CSAT…) to add up the
    time events spend in each, by the domain that registered it; returns the running totals."""
    spent: Counter[str] = Counter()

    def timed(reaction: Callable[[Event], Any]) -> Callable[[Event], Any]:
        domain = reaction.__module__.removeprefix("enque.").split(".")[0]

        async def run(event: Event) -> None:
            began = time.perf_counter()
            try:
                await reaction(event)
            finally:
                spent[domain] += time.perf_counter() - began

        return run

    runtime.reactions[:] = [timed(r) for r in runtime.reactions]
    return spent


async def _time_tick(settings: Settings, db: str, count: int) -> None:
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
        waiting = (Ticket.workspace_id == workspace.id) & (Ticket.status == "With User")
        async with runtime.db.transaction() as session:
            # a realistic backlog: the With User tickets untouched for four days
            await session.execute(
                update(Ticket).where(waiting).values(updated_at=now() - 4 * 86400)
            )
            due = (await session.execute(select(func.count()).where(waiting))).scalar_one()
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
        # the floor: one statement closing every due ticket, undone
        began = time.perf_counter()
        async with runtime.db.session() as session:
            await session.execute(
                update(Ticket).where(waiting).values(status="Closed", version=Ticket.version + 1)
            )
            floor = time.perf_counter() - began
            await session.rollback()
        spent = timed_reactions(runtime)
        began = time.perf_counter()
        report = await run_time_rules(runtime)
        tick = time.perf_counter() - began
        async with runtime.db.session(write=False) as session:
            closed = (await session.execute(select(func.count()).where(waiting))).scalar_one()
    finally:
        await runtime.close()
    print(f"time rules on {count:,} tickets ({due:,} due), {db}")
    print(f"candidate query alone (500 rows), median of 5: {statistics.median(samples):.1f} ms")
    print(f"one bare UPDATE closing the {due:,} due tickets (floor): {floor * 1000:.0f} ms")
    reactions = sum(spent.values())
    print(
        f"one tick: {tick * 1000:.0f} ms ({report.fired / tick:,.0f} tickets closed/s), "
        f"of which {reactions * 1000:.0f} ms in the events' reactions; {report}"
    )
    by_domain = ", ".join(f"{name} {t * 1000:.0f} ms" for name, t in spent.most_common())
    print(f"reactions by domain: {by_domain}")
    print(f"With User tickets left: {closed:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=["requests", "statements", "tick"])
    args = parser.parse_args()
    if args.only in (None, "requests"):
        bench_rules_on_create(args.db, args.requests, args.concurrency, args.rounds)
    if args.only in (None, "statements"):
        bench_statements(args.db, 50)
    if args.only in (None, "tick"):
        bench_time_tick(args.db, args.tickets)


if __name__ == "__main__":
    main()
