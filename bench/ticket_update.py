"""A ticket update with every domain's after-commit reactions, as `PATCH /v1/tickets/{id}` runs
them before it answers: time and CPU per update, beside the same update with no reaction
registered (the ceiling) measured in the same run.

In process, SQLite, one workspace with no webhook, SLA policy or survey (the reactions have
nothing to do). Updates alternate priority and status (Open ↔ Closed, so CSAT's reaction is
asked half of the time).

    .venv/bin/python bench/ticket_update.py [--updates 300]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import scratch_dir  # noqa: E402
from enque import domains  # noqa: E402
from enque.activity.service import Actor  # noqa: E402
from enque.auth.service import create_workspace_with_admin  # noqa: E402
from enque.config import Settings  # noqa: E402
from enque.core.migrate import upgrade  # noqa: E402
from enque.core.runtime import Runtime  # noqa: E402
from enque.tickets.service import NewTicket, create_ticket, update_ticket  # noqa: E402


async def updates(runtime: Runtime, workspace_id: str, actor: Actor, count: int) -> str:
    async with runtime.db.session() as session:
        ticket = await create_ticket(
            session,
            workspace_id=workspace_id,
            ticket=NewTicket(actor=actor, subject="Bench", customer_email="customer@example.com"),
        )
    started, cpu = time.perf_counter(), time.process_time()
    for n in range(count):
        async with runtime.db.session() as session:
            await update_ticket(
                session, workspace_id=workspace_id, actor=actor, ticket_id=ticket.id,
                changes={"priority": ("Low", "High")[n % 2], "status": ("Open", "Closed")[n % 2]},
            )  # fmt: skip
    wall, used = time.perf_counter() - started, time.process_time() - cpu
    return f"{1000 * wall / count:6.2f} ms, {1000 * used / count:6.2f} ms CPU per update"


async def run(count: int) -> None:
    data_dir = scratch_dir()
    try:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=f"sqlite:///{data_dir}/bench.db",
            data_dir=str(data_dir),
            encryption_key=base64.b64encode(secrets.token_bytes(32)).decode(),
            secret_key=secrets.token_hex(32),
            log_level="WARNING",
        )
        await upgrade(settings)
        runtime = Runtime.build(settings)
        async with runtime.db.session() as session:
            agent, workspace = await create_workspace_with_admin(
                session, email="bench@example.com", password="bench-password-1",
                display_name="Bench", workspace_name="Bench", subdomain="bench",
            )  # fmt: skip
        actor = Actor("agent", agent.id)
        bare = await updates(runtime, workspace.id, actor, count)
        for module in domains.hook_modules():
            if hasattr(module, "setup"):
                module.setup(runtime)
        reacted = await updates(runtime, workspace.id, actor, count)
        print(f"{count} ticket updates, SQLite, 1 process")
        print(f"  no reaction registered (ceiling): {bare}")
        print(f"  every domain's reactions:         {reacted}")
        await runtime.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=300)
    asyncio.run(run(parser.parse_args().updates))


if __name__ == "__main__":
    main()
