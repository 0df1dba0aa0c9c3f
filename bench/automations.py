"""Automation figures, each beside a ceiling measured in the same run.

1. Engine: tickets/s through `plan()` with 50 rules, beside the same tickets with no rule
   (the fixed cost of a plan) and with 1 rule.
2. Time rules: the candidate query of a `time.elapsed` rule on a SQLite tickets table of
   `--tickets` rows, beside the plain indexed list query (`status`, oldest update first) that
   bounds it.

Run: .venv/bin/python bench/automations.py [--tickets 100000]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text

from enque.automations.engine import Action, Condition, Rule, TicketFacts, plan
from enque.automations.models import AutomationRun
from enque.automations.timerules import candidate_query
from enque.core.db import Base

NOW = 1_800_000_000
WORDS = [
    "invoice",
    "refund",
    "outage",
    "password",
    "login",
    "printer",
    "urgent",
    "billing",
    "upgrade",
    "cancel",
    "export",
    "import",
    "slow",
    "error",
    "crash",
    "vpn",
    "email",
    "calendar",
    "license",
    "renewal",
]
STATUSES = ("Unread", "Open", "In Progress", "With User", "Closed")
PRIORITIES = ("Low", "Medium", "High", "Critical")


def make_rules(n: int, rng: random.Random) -> list[Rule]:
    kinds = [
        lambda: [Condition("subject", "contains", rng.choice(WORDS))],
        lambda: [Condition("body", "matches", rf"\b{rng.choice(WORDS)}\s+{rng.choice(WORDS)}")],
        lambda: [
            Condition("status", "is", rng.choice(STATUSES)),
            Condition("priority", "gt", rng.choice(PRIORITIES[:3])),
        ],
        lambda: [
            Condition("customer_domain", "is", f"customer{rng.randint(0, 50)}.test"),
            Condition("tag", "is_not", rng.choice(WORDS)),
        ],
        lambda: [
            Condition("hours_since_customer_reply", "gt", rng.choice([4, 24, 72])),
            Condition("team", "is", f"team-{rng.randint(0, 5)}"),
        ],
    ]
    return [
        Rule(
            id=f"r{i}",
            name=f"rule {i}",
            trigger="ticket.created",
            match=rng.choice(["all", "all", "all", "any"]),
            conditions=tuple(kinds[i % len(kinds)]()),
            actions=(Action("add_tag", f"tag{i}"), Action("set_priority", "High")),
        )
        for i in range(n)
    ]


def make_tickets(n: int, rng: random.Random) -> list[TicketFacts]:
    return [
        TicketFacts(
            id=f"t{i}",
            workspace_id="w",
            subject=" ".join(rng.choices(WORDS, k=6)),
            body=" ".join(rng.choices(WORDS, k=300)),  # about 2 KB of text
            status=rng.choice(STATUSES),
            priority=rng.choice(PRIORITIES),
            customer_email=f"someone@customer{rng.randint(0, 50)}.test",
            team_id=f"team-{rng.randint(0, 5)}",
            tags=tuple(rng.choices(WORDS, k=2)),
            created_at=NOW - 200 * 3600,
            updated_at=NOW - rng.randint(0, 100) * 3600,
            last_customer_reply_at=NOW - rng.randint(0, 100) * 3600,
        )
        for i in range(n)
    ]


def best_rate(work: Callable[[], int], repeat: int = 5) -> float:
    """Items per second of the fastest of `repeat` runs."""
    rates = []
    for _ in range(repeat):
        started = time.perf_counter()
        items = work()
        rates.append(items / (time.perf_counter() - started))
    return max(rates)


def bench_engine() -> None:
    rng = random.Random(1)
    tickets = make_tickets(2000, rng)
    rules50 = make_rules(50, rng)

    def run(rules: list[Rule]) -> Callable[[], int]:
        def work() -> int:
            for facts in tickets:
                plan(rules, facts, now=NOW)
            return len(tickets)

        return work

    fired = sum(len(plan(rules50, facts, now=NOW).fired) for facts in tickets) / len(tickets)
    baseline = best_rate(run([]))
    one = best_rate(run(rules50[:1]))
    fifty = best_rate(run(rules50))
    print(
        f"engine (2,000 tickets, 2 KB bodies, {fired:.1f} of 50 rules fire per ticket, best of 5)"
    )
    print(f"  no rule (ceiling)   {baseline:12,.0f} tickets/s")
    print(f"  1 rule              {one:12,.0f} tickets/s")
    print(
        f"  50 rules            {fifty:12,.0f} tickets/s = {fifty * 50:,.0f} rule evaluations/s"
        f"  ({fifty / baseline:.1%} of the ceiling, {1e6 / fifty:.0f} µs per ticket)"
    )


def fill_tickets(path: Path, count: int) -> None:
    rng = random.Random(2)
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE tickets (id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, status TEXT,
          priority TEXT, assignee_id TEXT, team_id TEXT, category_id TEXT, mailbox_id TEXT,
          company_id TEXT, created_at INTEGER, updated_at INTEGER,
          last_customer_reply_at INTEGER, last_agent_reply_at INTEGER, deleted_at INTEGER,
          merged_into_ticket_id TEXT);
        CREATE INDEX ix_tickets_list ON tickets (workspace_id, status, updated_at DESC, id);
    """)
    rows = (
        (
            f"t{i:08d}",
            "w",
            rng.choice(STATUSES),
            rng.choice(PRIORITIES),
            None,
            f"team-{rng.randint(0, 5)}",
            None,
            None,
            None,
            NOW - 400 * 86400,
            NOW - rng.randint(0, 365 * 86400),
            None,
            None,
            None,
            None,
        )
        for i in range(count)
    )
    db.executemany("INSERT INTO tickets VALUES (" + ",".join("?" * 15) + ")", rows)
    db.commit()
    db.close()


def bench_time_rules(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        fill_tickets(path, count)
        engine = create_engine(f"sqlite:///{path}")
        Base.metadata.create_all(engine, tables=[AutomationRun.__table__], checkfirst=True)
        rule = Rule(
            id="r",
            name="close waiting",
            trigger="time.elapsed",
            conditions=(Condition("status", "is", "With User"),),
            actions=(Action("set_status", "Closed"),),
            trigger_config={"hours": 72, "field": "updated"},
        )
        query = candidate_query(rule, workspace_id="w", now=NOW, limit=500)
        ceiling = (
            "SELECT id, updated_at FROM tickets WHERE workspace_id = 'w' AND status = 'With User'"
            f" AND updated_at <= {NOW - 72 * 3600} ORDER BY updated_at, id LIMIT 500"
        )
        with engine.connect() as conn:

            def timed(run: Callable[[], object]) -> float:
                samples = []
                for _ in range(7):
                    started = time.perf_counter()
                    run()
                    samples.append(time.perf_counter() - started)
                return statistics.median(samples) * 1000

            mine = timed(lambda: conn.execute(query).all())
            bound = timed(lambda: conn.execute(text(ceiling)).all())
            plan_rows = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN "
                + str(query.compile(engine, compile_kwargs={"literal_binds": True}))
            ).all()
        print(f"time rule candidates ({count:,} tickets, SQLite, 500 per tick, median of 7)")
        print(f"  indexed list query (ceiling)   {bound:8.2f} ms")
        print(
            f"  candidate query                {mine:8.2f} ms  ({bound / mine:.0%} of the ceiling)"
        )
        print("  plan: " + "; ".join(str(r[-1]) for r in plan_rows))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=100_000)
    args = parser.parse_args()
    bench_engine()
    bench_time_rules(args.tickets)


if __name__ == "__main__":
    main()
