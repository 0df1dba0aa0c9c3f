"""Messages that cannot be processed: kept raw with the error, shown on the mailbox, never
fetched in a loop, and processed again by `enque email retry` once fixed — exactly once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import pytest

from enque.core.runtime import Runtime
from enque.core.storage import StorageNotFound, storage_of
from enque.email.parse import parse_message
from enque.mailboxes import batch as batch_module
from enque.mailboxes import ingest as ingest_module
from enque.mailboxes import sync
from enque.mailboxes.ingest import dead_letter_key
from enque.mailboxes.retry import retry_failed
from tests.email.mailflow import connect_graph, connect_imap, ledger, mail, tickets_of
from tests.emulators.graph import GraphEmulator
from tests.support.api import Tenant, data


@pytest.fixture
def poison(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Processing raises for messages whose subject says "poison", until `cure()`: a batch
    holding one fails as a whole, then the message alone."""
    real, real_run = ingest_module._process, batch_module._Batch.run

    async def failing(*args: Any, **kwargs: Any) -> Any:
        inbound = args[3]
        if "poison" in inbound.parsed.subject:
            raise RuntimeError("the category rules are broken")
        return await real(*args, **kwargs)

    async def failing_batch(self: Any, batch: Any) -> None:
        if any("poison" in m.inbound.parsed.subject for m in batch):
            raise RuntimeError("the category rules are broken")
        await real_run(self, batch)

    def cure() -> None:
        monkeypatch.setattr(ingest_module, "_process", real)
        monkeypatch.setattr(batch_module._Batch, "run", real_run)

    monkeypatch.setattr(ingest_module, "_process", failing)
    monkeypatch.setattr(batch_module._Batch, "run", failing_batch)
    return cure


async def raw_copy(runtime: Runtime, workspace_id: str, ledger_id: str) -> bytes | None:
    try:
        return await storage_of(runtime).read(dead_letter_key(workspace_id, ledger_id))
    except StorageNotFound:
        return None


async def test_failed_message_is_kept_raw_and_retried_once(
    tenant: Tenant, app_runtime: Runtime, poison: Any
) -> None:
    box = await connect_imap(tenant)
    bad, bad_id = mail(to=box.email, subject="poison pill", body="please help")
    box.deliver(mail(to=box.email, subject="fine")[0])
    box.deliver(bad)
    report = (await sync.sync_mailbox(app_runtime, box.id)).as_dict()
    assert report["created"] == 1 and report["failed"] == 1
    [failed] = [r for r in await ledger(app_runtime, box.id) if r.state == "failed"]
    assert failed.internet_message_id == bad_id and "category rules" in (failed.error or "")
    kept = await raw_copy(app_runtime, tenant.workspace_id, failed.id)
    assert kept is not None and parse_message(kept).message_id == bad_id
    shown = data(await tenant.get(f"/v1/mailboxes/{box.id}"))
    assert shown["messageCounts"]["failed"] == 1 and "could not be processed" in shown["lastError"]
    assert (await sync.sync_mailbox(app_runtime, box.id)).fetched == 0  # never in a loop

    # still broken: the retry keeps the row with the new error, and the raw copy
    [again] = await retry_failed(app_runtime, workspace_id=tenant.workspace_id)
    assert again.outcome == "failed" and again.ledger_id == failed.id
    assert await raw_copy(app_runtime, tenant.workspace_id, failed.id) is not None

    poison()
    [done] = await retry_failed(app_runtime, mailbox_id=box.id)
    assert done.outcome == "created"
    rows = await ledger(app_runtime, box.id)
    assert len(rows) == 2 and all(r.state == "processed" for r in rows)
    subjects = sorted(t.subject for t in await tickets_of(app_runtime, tenant.workspace_id))
    assert subjects == ["fine", "poison pill"]
    assert await raw_copy(app_runtime, tenant.workspace_id, failed.id) is None
    assert data(await tenant.get(f"/v1/mailboxes/{box.id}"))["messageCounts"]["failed"] == 0
    assert await retry_failed(app_runtime, workspace_id=tenant.workspace_id) == []
    assert (await sync.sync_mailbox(app_runtime, box.id)).fetched == 0


async def test_two_retries_at_once_process_it_once(
    tenant: Tenant, app_runtime: Runtime, poison: Any
) -> None:
    box = await connect_imap(tenant)
    box.deliver(mail(to=box.email, subject="poison twice")[0])
    await sync.sync_mailbox(app_runtime, box.id)
    poison()
    results = await asyncio.gather(
        retry_failed(app_runtime, mailbox_id=box.id), retry_failed(app_runtime, mailbox_id=box.id)
    )
    assert sorted(r.outcome for done in results for r in done) == ["created", "duplicate"]
    assert len(await tickets_of(app_runtime, tenant.workspace_id)) == 1
    [row] = await ledger(app_runtime, box.id)
    assert row.state == "processed"


async def test_retry_command(
    tenant: Tenant,
    app_runtime: Runtime,
    poison: Any,
    base_env: dict[str, str],
    database_url: str,
) -> None:
    box = await connect_imap(tenant)
    box.deliver(mail(to=box.email, subject="poison again")[0])
    await sync.sync_mailbox(app_runtime, box.id)
    [failed] = await ledger(app_runtime, box.id)
    assert failed.state == "failed"
    env = {**os.environ, **base_env, "DATABASE_URL": database_url}
    command = ["email", "retry", "--workspace-id", tenant.workspace_id]
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "enque.cli", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )  # the command's process is not poisoned: the cause is fixed
    assert done.returncode == 0, done.stderr
    assert f"{failed.id}: created" in done.stdout
    [ticket] = await tickets_of(app_runtime, tenant.workspace_id)
    assert ticket.subject == "poison again"


async def test_graph_failed_message_is_kept_as_mime_and_retried(
    tenant: Tenant, app_runtime: Runtime, microsoft: GraphEmulator, poison: Any
) -> None:
    mailbox_id, user = await connect_graph(app_runtime, tenant, microsoft)
    first, _ = mail(to=user.mail, subject="Quote")
    microsoft.deliver(user, first)
    await sync.sync_mailbox(app_runtime, mailbox_id)
    [ticket] = await tickets_of(app_runtime, tenant.workspace_id)
    # a reply threaded only by Graph's conversation, which fails
    reply = microsoft.deliver(user, mail(to=user.mail, subject="RE: poison", body="more")[0])
    reply.conversation_id = ticket.conversation_id or ""
    assert (await sync.sync_mailbox(app_runtime, mailbox_id)).as_dict()["failed"] == 1
    [failed] = [r for r in await ledger(app_runtime, mailbox_id) if r.state == "failed"]
    assert microsoft.calls["get_mime"] == 1
    kept = await raw_copy(app_runtime, tenant.workspace_id, failed.id)
    assert kept is not None and b"more" in kept

    poison()
    [done] = await retry_failed(app_runtime, mailbox_id=mailbox_id)
    assert done.outcome == "commented"  # the conversation id was kept on the ledger row
    assert len(await tickets_of(app_runtime, tenant.workspace_id)) == 1
