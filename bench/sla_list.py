"""SLA and custom-field lists on 100,000 tickets, beside the plain inbox in the same run.

Seeds `bench/ticket_list.py`'s workspace (`--tickets` tickets), gives every ticket an SLA state
(due times spread over the next weeks, 5 % breached) and a `plan` dropdown custom field (a
quarter of the tickets each of four values), then measures at `--concurrency` clients:
- ceiling: `GET /v1/auth/me`, and the plain inbox `GET /v1/tickets`;
- `GET /v1/sla/tickets` (due soonest first), `GET /v1/sla/tickets?breached=true`;
- the inbox by SLA: `GET /v1/tickets?sort=slaDue`, `?breached=true`, and both;
- `GET /v1/tickets?cf=plan:gold` (the custom-field filter), with `status=Open`, and sorted
  by the SLA due soonest (`sort=slaDue&cf=plan:gold`).

The plain inbox rows carry each ticket's SLA state and custom field values.

Run: .venv/bin/python -m bench.sla_list [--tickets 100000] [--db postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time

import httpx
from sqlalchemy import insert, select, text

from bench.harness import ROOT, get, measure, psql
from bench.ticket_list import seed
from enque.config import Settings
from enque.core.db import new_id, now
from enque.core.migrate import upgrade_sync
from enque.core.runtime import Runtime
from enque.customfields.models import CustomField, CustomFieldValue
from enque.sla.models import SlaPolicy, TicketSla
from enque.tickets.models import Ticket
from tests.support.services import free_port

PLANS = ["gold", "silver", "bronze", "free"]
CHUNK = 5000


async def seed_extensions(settings: Settings, workspace_id: str) -> None:
    runtime = Runtime.build(settings)
    rng = random.Random(7)
    moment = now()
    try:
        async with runtime.db.session(write=False) as session:
            ids = list(
                (
                    await session.execute(
                        select(Ticket.id).where(Ticket.workspace_id == workspace_id)
                    )
                ).scalars()
            )
        policy_id, field_id = new_id(), new_id()
        async with runtime.db.transaction() as session:
            await session.execute(
                insert(SlaPolicy),
                [
                    {
                        "id": policy_id,
                        "workspace_id": workspace_id,
                        "name": "Standard",
                        "match": {},
                        "first_response_minutes": 60,
                        "resolution_minutes": 2880,
                        "position": 0,
                    }
                ],
            )
            await session.execute(
                insert(CustomField),
                [
                    {
                        "id": field_id,
                        "workspace_id": workspace_id,
                        "entity": "ticket",
                        "key": "plan",
                        "label": "Plan",
                        "type": "dropdown",
                        "options": PLANS,
                        "required_on_close": False,
                        "position": 0,
                    }
                ],
            )
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            sla_rows, value_rows = [], []
            for ticket_id in chunk:
                due = moment + rng.randint(-3 * 86400, 21 * 86400)
                breached = rng.random() < 0.05
                sla_rows.append(
                    {
                        "ticket_id": ticket_id,
                        "workspace_id": workspace_id,
                        "policy_id": policy_id,
                        "first_response_due_at": due,
                        "resolution_due_at": due + 86400,
                        "next_due_at": None if rng.random() < 0.2 else due,
                        "paused_seconds": 0,
                        "breached": ["firstResponse"] if breached else [],
                        "warned": [],
                        "is_breached": breached,
                        "created_at": moment,
                        "updated_at": moment,
                    }
                )
                plan = rng.choice(PLANS)
                value_rows.append(
                    {
                        "id": new_id(),
                        "workspace_id": workspace_id,
                        "field_id": field_id,
                        "entity_id": ticket_id,
                        "value": plan,
                        "value_text": plan,
                        "created_at": moment,
                        "updated_at": moment,
                    }
                )
            async with runtime.db.transaction() as session:
                await session.execute(insert(TicketSla), sla_rows)
                await session.execute(insert(CustomFieldValue), value_rows)
        async with runtime.db.session() as session:  # planner statistics for the new rows
            await session.execute(text("ANALYZE"))
            await session.commit()
    finally:
        await runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pg_name = f"enque_bench_sla_{os.getpid()}"
        if args.db == "postgres":
            psql(f"CREATE DATABASE {pg_name}")
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
            token, workspace_id, _ = asyncio.run(seed(settings, args.tickets, False))
            asyncio.run(seed_extensions(settings, workspace_id))
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
            deadline = time.monotonic() + 180  # a loaded machine starts slowly
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            scenarios = {
                "ceiling: GET /v1/auth/me": "/v1/auth/me",
                "plain inbox, first page": "/v1/tickets",
                "SLA due soonest": "/v1/sla/tickets",
                "SLA breached": "/v1/sla/tickets?breached=true",
                "inbox sort=slaDue": "/v1/tickets?sort=slaDue",
                "inbox breached=true": "/v1/tickets?breached=true",
                "inbox slaDue + breached": "/v1/tickets?sort=slaDue&breached=true",
                "cf=plan:gold": "/v1/tickets?cf=plan:gold",
                "cf=plan:gold, status Open": "/v1/tickets?cf=plan:gold&status=Open",
                "inbox slaDue + cf=plan:gold": "/v1/tickets?sort=slaDue&cf=plan:gold",
            }
            print(f"{args.concurrency} concurrent, {args.requests} requests each, limit 50\n")
            print(f"{'scenario':28} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'p99/inbox':>10}")
            inbox = None
            for name, path in scenarios.items():
                figures = asyncio.run(
                    measure(url, token, get(path), args.concurrency, args.requests)
                )
                if path == "/v1/tickets":
                    inbox = figures["p99"]
                ratio = f"{figures['p99'] / inbox:10.2f}" if inbox else f"{'':>10}"
                print(
                    f"{name:28} {figures['p50']:8.1f} {figures['p99']:8.1f} "
                    f"{figures['rps']:8.0f} {ratio}"
                )
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
            if args.db == "postgres":
                psql(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
