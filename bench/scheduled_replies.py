"""Scheduled-reply lateness: how long after `sendAt` replies actually go out.

Schedules `--replies` replies (default 1,000) on 100 tickets, then runs the job the way the
scheduler does: `send_due_replies(runtime)` at a fixed rate of one call per `--tick` seconds.
A reply has gone out when its transaction committed (`scheduled_reply.sent`, after commit);
lateness = that moment − `sendAt`. Two loads:

- spread: `sendAt` spread evenly over `--spread` seconds (a busy help desk's "send later");
- burst: every reply due in the same second (the worst case: one campaign, one moment).

Beside each, two ceilings measured in the same run: the tick alone (when the first tick at or
after `sendAt` started: what an infinitely fast sender would achieve with this tick) and the
cost of one immediate reply (`add_reply` alone, the path a scheduled reply takes), which bounds
how fast a burst can drain.

    .venv/bin/python bench/scheduled_replies.py [--db postgres] [--tick 1] [--spread 60]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from enque.activity.service import Actor  # noqa: E402
from enque.app import create_app  # noqa: E402
from enque.auth.service import create_workspace_with_admin  # noqa: E402
from enque.comments.service import add_reply  # noqa: E402
from enque.config import Settings  # noqa: E402
from enque.core.events import Event  # noqa: E402
from enque.core.migrate import upgrade_sync  # noqa: E402
from enque.core.runtime import Runtime  # noqa: E402
from enque.scheduled_replies.service import schedule_reply, send_due_replies  # noqa: E402
from enque.signatures.service import set_workspace_signature  # noqa: E402
from enque.tickets.service import NewTicket, create_ticket  # noqa: E402

TICKETS = 100


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def seed(runtime: Runtime) -> tuple[str, str, list[str]]:
    async with runtime.db.transaction() as session:
        agent, workspace = await create_workspace_with_admin(
            session,
            email=f"bench-{os.getpid()}@example.com",
            password="bench password 123",
            display_name="Bench Agent",
            workspace_name="Bench",
            subdomain=f"bench-{os.getpid()}",
        )
    actor = Actor("agent", agent.id)
    async with runtime.db.transaction() as session:
        await set_workspace_signature(
            session,
            workspace_id=workspace.id,
            actor=actor,
            content="<p>Bench Support</p>",
            is_enabled=True,
        )
    tickets = []
    for i in range(TICKETS):
        async with runtime.db.transaction() as session:
            ticket = await create_ticket(
                session,
                workspace_id=workspace.id,
                ticket=NewTicket(
                    actor=actor,
                    subject=f"Ticket {i}",
                    body="<p>Help</p>",
                    customer_email=f"customer{i}@example.com",
                    customer_name=f"Customer {i}",
                ),
            )
            tickets.append(ticket.id)
    return workspace.id, agent.id, tickets


async def immediate_cost(
    runtime: Runtime, workspace_id: str, agent_id: str, tickets: list[str], n: int = 200
) -> list[float]:
    """Seconds per immediate reply (`add_reply` in its own transaction)."""
    costs = []
    for i in range(n):
        began = time.perf_counter()
        async with runtime.db.transaction() as session:
            await add_reply(
                session,
                workspace_id=workspace_id,
                actor=Actor("agent", agent_id),
                ticket_id=tickets[i % len(tickets)],
                content=f"<p>Immediate {i}</p>",
            )
        costs.append(time.perf_counter() - began)
    return costs


async def run_load(
    runtime: Runtime,
    workspace_id: str,
    agent_id: str,
    tickets: list[str],
    *,
    replies: int,
    start_in: int,
    spread: int,
    tick: float,
) -> dict[str, list[float]]:
    base = int(time.time()) + start_in
    send_ats: dict[str, int] = {}
    async with runtime.db.transaction() as session:  # all in one transaction: quick to seed
        for i in range(replies):
            send_at = base + (i * spread) // replies if spread else base
            row = await schedule_reply(
                session,
                workspace_id=workspace_id,
                actor=Actor("agent", agent_id),
                ticket_id=tickets[i % len(tickets)],
                content=f"<p>Scheduled {i}</p>",
                send_at=send_at,
            )
            send_ats[row.id] = send_at
    if time.time() > base:
        raise SystemExit("scheduling took longer than --start-in; raise it")

    sent_at: dict[str, float] = {}

    async def on_sent(event: Event) -> None:
        if event.type == "scheduled_reply.sent":
            sent_at[event.payload["scheduledReply"]["id"]] = time.time()

    runtime.reactions.append(on_sent)
    ticks: list[float] = []
    loop = asyncio.get_running_loop()
    began = loop.time()
    k = 0
    try:
        while len(sent_at) < len(send_ats):
            ticks.append(time.time())
            await send_due_replies(runtime)
            k += 1
            await asyncio.sleep(max(0.0, began + k * tick - loop.time()))
            if loop.time() - began > spread + start_in + 600:
                raise SystemExit("replies not sent in time")
    finally:
        runtime.reactions.remove(on_sent)
    lateness = [sent_at[i] - send_ats[i] for i in send_ats]
    # the first tick of the fixed-rate schedule at or after sendAt: an instant sender's lateness
    first = ticks[0]
    tick_only = [first + math.ceil((at - first) / tick) * tick - at for at in send_ats.values()]
    return {"lateness": lateness, "tick_only": tick_only}


def show(name: str, figures: list[float]) -> None:
    p50, p99, top = (1000 * v for v in (pct(figures, 0.5), pct(figures, 0.99), max(figures)))
    print(f"  {name:34} p50 {p50:8.0f} ms   p99 {p99:8.0f} ms   max {top:8.0f} ms")


async def bench(settings: Settings, args: argparse.Namespace) -> None:
    app = create_app(settings)
    runtime: Runtime = app.state.runtime
    await runtime.start()
    try:
        workspace_id, agent_id, tickets = await seed(runtime)
        costs = await immediate_cost(runtime, workspace_id, agent_id, tickets)
        print(
            "ceiling: one immediate reply (add_reply)"
            f" p50 {statistics.median(costs) * 1000:.1f} ms, p99 {pct(costs, 0.99) * 1000:.1f} ms"
            f" → at most {1 / statistics.mean(costs):.0f} replies/s on this database\n"
        )
        loads = [("spread", args.spread), ("burst", 0)]
        for name, spread in loads:
            result = await run_load(
                runtime,
                workspace_id,
                agent_id,
                tickets,
                replies=args.replies,
                start_in=args.start_in,
                spread=spread,
                tick=args.tick,
            )
            label = f"over {spread} s" if spread else "all due in the same second"
            print(f"{name}: {args.replies} replies {label}, tick {args.tick:g} s")
            show("lateness (sent − sendAt)", result["lateness"])
            show("ceiling: the tick alone", result["tick_only"])
    finally:
        await runtime.close()


def _psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-c", sql],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--replies", type=int, default=1000)
    parser.add_argument("--tick", type=float, default=1.0, help="seconds between job runs")
    parser.add_argument("--spread", type=int, default=60, help="seconds the sendAt spread over")
    parser.add_argument("--start-in", type=int, default=60, help="seconds before the first")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        pg_name = f"enque_bench_sr_{os.getpid()}"
        if args.db == "postgres":
            _psql(f"CREATE DATABASE {pg_name}")
            database_url = f"postgresql://postgres@127.0.0.1:5432/{pg_name}"
        else:
            database_url = f"sqlite:///{tmp}/bench.db"
        env = {
            "database_url": database_url,
            "data_dir": tmp,
            "env": "development",
            "secret_key": secrets.token_hex(32),
            "encryption_key": base64.b64encode(secrets.token_bytes(32)).decode(),
            "rate_limit_enabled": "false",
            "log_level": "WARNING",
            "scheduler_enabled": "false",
        }
        try:
            settings = Settings(_env_file=None, **env)  # type: ignore[arg-type]
            upgrade_sync(settings)
            print(f"database: {args.db}")
            asyncio.run(bench(settings, args))
        finally:
            if args.db == "postgres":
                _psql(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
