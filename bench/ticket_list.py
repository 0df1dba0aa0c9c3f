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
import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import delete, insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    Request,
    bench_database,
    bench_env,
    measure,
    scratch_dir,
    start_bare,
    start_enque,
    wrk,
)
from enque.auth.service import create_workspace_with_admin  # noqa: E402
from enque.comments.models import Comment  # noqa: E402
from enque.config import Settings  # noqa: E402
from enque.core.db import new_id, now  # noqa: E402
from enque.core.migrate import upgrade_sync  # noqa: E402
from enque.core.runtime import Runtime  # noqa: E402
from enque.core.security import issue_token  # noqa: E402
from enque.seeding import RARE_WORD, seed_workspace  # noqa: E402


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


async def prepare(settings: Settings, count: int, search: bool) -> tuple[str, str, bool]:
    """(token, id of ticket #1, whether it was seeded now): a database seeded by an earlier
    `--keep` run with as many tickets is reused."""
    runtime = Runtime.build(settings)
    try:
        async with runtime.db.session(write=False) as session:
            found = (
                await session.execute(
                    text(
                        "SELECT a.id, w.id, (SELECT COUNT(*) FROM tickets t "
                        "WHERE t.workspace_id = w.id AND t.number <= :n) "
                        "FROM agents a JOIN agent_workspaces aw ON aw.agent_id = a.id "
                        "JOIN workspaces w ON w.id = aw.workspace_id "
                        "WHERE a.email = 'bench@example.com'"
                    ),
                    {"n": count},
                )
            ).first()
            if found is not None and found[2] >= count:
                long_thread = await session.scalar(
                    text("SELECT id FROM tickets WHERE workspace_id = :w AND number = 1"),
                    {"w": found[1]},
                )
                token, _ = issue_token(
                    secret=settings.resolved_secret_key(), agent_id=found[0],
                    workspace_id=found[1], role="admin", token_version=0, lifetime=86400,
                )  # fmt: skip
                return token, str(long_thread), False
    finally:
        await runtime.close()
    token, _, long_thread = await seed(settings, count, search)
    return token, long_thread, True


def drain(url: str, auth: dict[str, str]) -> None:
    """Wait out the requests wrk left in flight (a slow search row leaves seconds of work):
    a page read queues behind them for a database connection."""
    httpx.get(f"{url}/v1/tickets?limit=1", headers=auth, timeout=300)


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


def read_scenarios(long_thread: str, deep: str | None) -> dict[str, str]:
    found = {
        "inbox, first page": "/v1/tickets",
        "status Open + In Progress": "/v1/tickets?status=Open&status=In%20Progress",
        "assigneeId=me, Open": "/v1/tickets?assigneeId=me&status=Open",
        "sort=priority": "/v1/tickets?sort=priority",
        "sort=dueAt": "/v1/tickets?sort=dueAt",
        "tag=vip": "/v1/tickets?tag=vip",
    }
    if deep:
        found["inbox, 1,000 pages deep"] = f"/v1/tickets?cursor={deep}"
    found["ticket detail (200-comment thread)"] = f"/v1/tickets/{long_thread}"
    found["thread, first 50 of 200"] = f"/v1/tickets/{long_thread}/comments?limit=50"
    return found


def write_scenarios(long_thread: str) -> dict[str, Request]:
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

    return {"POST /v1/tickets": create, "POST /v1/tickets/{id}/notes": note}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--concurrency", default="10,50", help="comma-separated levels")
    parser.add_argument("--seconds", type=int, default=5, help="wrk time per GET row")
    parser.add_argument("--requests", type=int, default=300, help="per POST row")
    parser.add_argument("--search", action="store_true", help="index documents and measure `q`")
    parser.add_argument(
        "--keep", action="store_true", help="keep the seeded database for the next run (reused)"
    )
    parser.add_argument(
        "--seed-only", action="store_true", help="with --keep: seed the database and stop"
    )
    args = parser.parse_args()

    name = f"enque_bench_tickets_{args.tickets}{'_search' if args.search else ''}"
    data_dir = Path(tempfile.gettempdir()) / name if args.keep else scratch_dir()
    data_dir.mkdir(exist_ok=True)
    with bench_database(args.db, data_dir, name, keep=args.keep) as database_url:
        env = bench_env(data_dir, DATABASE_URL=database_url)
        settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})
        upgrade_sync(settings)
        began = time.perf_counter()
        token, long_thread, seeded = asyncio.run(prepare(settings, args.tickets, args.search))
        took = time.perf_counter() - began
        print(f"{'seeded' if seeded else 'reused'} {args.tickets:,} tickets in {took:.0f} s")
        if args.seed_only:
            return
        server = start_enque(env)
        bare = None
        try:
            auth = {"Authorization": f"Bearer {token}"}
            page = httpx.get(f"{server.url}/v1/tickets", headers=auth, timeout=30)
            page_file = data_dir / "page.json"
            page_file.write_bytes(page.content)  # the ceiling serves these very bytes
            bare = start_bare(page_file)
            deep = None
            if args.tickets >= 50_050:
                deep = asyncio.run(deep_cursor(server.url, token, 1000))
            reads = read_scenarios(long_thread, deep)
            if args.search:
                reads["q, two common words"] = "/v1/tickets?q=printer%20refund"
                reads["q, one rare word"] = f"/v1/tickets?q={RARE_WORD}"
            print(
                f"{args.tickets:,} tickets on {args.db}, 1 worker; GET rows: wrk -t2, "
                f"{args.seconds} s each; POST rows: {args.requests} requests from Python clients\n"
            )
            for concurrency in [int(c) for c in args.concurrency.split(",")]:
                print(f"{concurrency} concurrent connections\n")
                print("| request | req/s | p50 ms | p99 ms | errors | p99 ÷ ceiling p99 |")
                print("| --- | ---: | ---: | ---: | ---: | ---: |")
                wrk(bare.url + "/page", connections=concurrency, seconds=1)  # warm-up
                ceiling = wrk(bare.url + "/page", connections=concurrency, seconds=args.seconds)
                rows = {"ceiling: bare FastAPI, same page bytes": ceiling}
                for label, path in {"GET /v1/auth/me": "/v1/auth/me", **reads}.items():
                    url = server.url + path
                    wrk(url, connections=concurrency, seconds=1, headers=auth)  # warm-up
                    rows[label] = wrk(
                        url, connections=concurrency, seconds=args.seconds, headers=auth
                    )
                    drain(server.url, auth)
                for label, load in rows.items():
                    print(f"{load.row(label)} {load.p99_ms / ceiling.p99_ms:.2f} |")
                for label, request in write_scenarios(long_thread).items():
                    figures = asyncio.run(
                        measure(server.url, token, request, concurrency, args.requests)
                    )
                    print(
                        f"| {label} | {figures['rps']:,.0f} | {figures['p50']:.2f} "
                        f"| {figures['p99']:.2f} | 0 | |"
                    )
                print()
        finally:
            server.stop()
            if bare is not None:
                bare.stop()


if __name__ == "__main__":
    main()
