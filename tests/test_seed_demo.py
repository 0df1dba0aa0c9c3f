"""`enque seed-demo` and the seeding it runs: consistent, realistic, usable through the API."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from enque.comments.models import Comment
from enque.core.runtime import Runtime
from enque.seeding import seed_workspace
from enque.tickets.models import Ticket
from enque.tickets.search import reindex_tickets
from tests.support.api import Tenant, data
from tests.support.seeded import digest, search_documents, seeded_content
from tests.test_cli import enque


async def test_seeded_workspace_is_consistent(app_runtime: Runtime, tenant: Tenant) -> None:
    report = await seed_workspace(app_runtime, tenant.workspace_id, tickets=300, seed=7)
    again = await seed_workspace(app_runtime, tenant.workspace_id, tickets=50, seed=8)
    assert (report.tickets, again.tickets) == (300, 50)
    async with app_runtime.db.session() as session:
        ws = Ticket.workspace_id == tenant.workspace_id
        numbers = (await session.scalars(select(Ticket.number).where(ws))).all()
        assert sorted(numbers) == list(range(1, 351))  # the second run numbers after the first
        closed_without_date = await session.scalar(
            select(func.count()).where(ws, Ticket.status == "Closed", Ticket.closed_at.is_(None))
        )
        assert closed_without_date == 0
        replies_before_ticket = await session.scalar(
            select(func.count())
            .select_from(Comment)
            .join(Ticket, Ticket.id == Comment.ticket_id)
            .where(ws, Comment.created_at < Ticket.created_at)
        )
        assert replies_before_ticket == 0
        comments = await session.scalar(
            select(func.count()).where(Comment.workspace_id == tenant.workspace_id)
        )
        assert comments == report.comments + again.comments > 300
    listed = await tenant.get("/v1/tickets", params={"limit": 50})
    assert len(data(listed)) == 50
    summary = data(
        await tenant.get("/v1/reports/summary", params={"from": int(time.time()) - 400 * 86400})
    )
    assert sum(summary["byStatus"].values()) == 350
    assert summary["byStatus"]["Closed"] > summary["byStatus"]["Unread"] > 0
    found = data(await tenant.get("/v1/tickets", params={"q": "printer", "status": "Closed"}))
    assert found, "seeded tickets are searchable"
    first = found[0]
    thread = data(await tenant.get(f"/v1/tickets/{first['id']}/comments"))
    assert {c["kind"] for c in thread} <= {"reply", "note", "customer"}


# Row counts and fingerprint of 300 tickets seeded with seed 7, as the seeder wrote them with
# one Core insert per table and batch, documents rebuilt per ticket (the same on both databases).
SEED_7_DIGEST = (
    "agents=10,team_members=10,teams=3,categories=5,companies=1,company_domains=1,users=15,"
    "tickets=300,bodies=300,tags=222,comments=1351 sha256=28509e38e89f80fa"
)


async def test_seeding_writes_the_same_rows_for_a_seed(
    app_runtime: Runtime, make_tenant: Callable[..., Awaitable[Tenant]]
) -> None:
    first, second = await make_tenant(), await make_tenant()
    await seed_workspace(app_runtime, first.workspace_id, tickets=300, seed=7)
    await seed_workspace(app_runtime, second.workspace_id, tickets=300, seed=7)
    async with app_runtime.db.session() as session:
        content = await seeded_content(session, first.workspace_id)
        assert await seeded_content(session, second.workspace_id) == content
    assert digest(content) == SEED_7_DIGEST


async def test_seeded_search_documents_are_those_of_reindexing(
    app_runtime: Runtime, tenant: Tenant
) -> None:
    await seed_workspace(app_runtime, tenant.workspace_id, tickets=120, seed=3)
    async with app_runtime.db.session() as session:
        seeded = await search_documents(session, tenant.workspace_id)
        ids = (
            await session.scalars(
                select(Ticket.id).where(Ticket.workspace_id == tenant.workspace_id)
            )
        ).all()
    assert len(seeded) == len(ids) == 120
    async with app_runtime.db.transaction() as session:
        await reindex_tickets(session, tenant.workspace_id, ids)
    async with app_runtime.db.session() as session:
        assert await search_documents(session, tenant.workspace_id) == seeded


@pytest.fixture
def env(base_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        **base_env,
        "ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'seed.db'}",
        "DATA_DIR": str(tmp_path),
    }


def test_seed_demo_command(env: dict[str, str]) -> None:
    done = enque("seed-demo", "--tickets", "200", "--no-search", env=env)
    assert done.returncode == 0, done.stderr
    assert "Demo workspace created" in done.stdout
    assert "200 tickets" in done.stdout
    missing = enque("seed-demo", "--workspace", "nope", "--tickets", "1", env=env)
    assert missing.returncode != 0 and "no workspace" in missing.stderr
    refused = enque("seed-demo", env={**env, "ENV": "production"})
    assert refused.returncode != 0
