"""Mail into tickets through a real Dovecot: threading, exactly once, crashes, concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from enque.core.runtime import Runtime
from enque.email.parse import parse_message
from enque.mailboxes import batch as batch_module
from enque.mailboxes import sync
from enque.mailboxes.ingest import Inbound, ingest
from tests.email import corpus
from tests.email.mailflow import (
    comments_of,
    connect_imap,
    count_threads,
    ledger,
    mail,
    mailbox_row,
    tickets_of,
)
from tests.support.api import Tenant, data


async def test_new_mail_opens_a_ticket_once(tenant: Tenant, app_runtime: Runtime) -> None:
    box = await connect_imap(tenant)
    raw, mid = mail(to=box.email, subject="Order 77 missing", frm="Alice A <Alice@Customer.test>")
    box.deliver(raw)
    report = await sync.sync_mailbox(app_runtime, box.id)
    assert report.as_dict()["created"] == 1 and report.error is None
    [ticket] = await tickets_of(app_runtime, tenant.workspace_id)
    assert ticket.subject == "Order 77 missing" and ticket.status == "Unread"
    assert ticket.mailbox_id == box.id and ticket.root_message_id == mid
    shown = data(await tenant.get(f"/v1/tickets/{ticket.id}"))
    assert shown["customer"]["email"].lower() == "alice@customer.test"
    # Nothing new: nothing fetched; the server's flags untouched (BODY.PEEK).
    again = await sync.sync_mailbox(app_runtime, box.id)
    assert again.fetched == 0
    assert all("S" not in flags for flags in box.dovecot.seen_flags(box.user))
    mailbox = data(await tenant.get(f"/v1/mailboxes/{box.id}"))
    assert mailbox["lastSyncAt"] and mailbox["lastError"] is None
    assert mailbox["messageCounts"]["received"] == 1


async def test_replies_thread_by_references_token_and_never_by_subject(
    tenant: Tenant, app_runtime: Runtime
) -> None:
    box = await connect_imap(tenant)
    first, mid = mail(to=box.email, subject="Help")
    box.deliver(first)
    await sync.sync_mailbox(app_runtime, box.id)
    [ticket] = await tickets_of(app_runtime, tenant.workspace_id)

    reply, _ = mail(
        to=box.email,
        subject="Re: Help",
        body="Any news?\n\nOn Mon, Jan 8, 2024 Support wrote:\n> We are looking\n",
        headers={"In-Reply-To": f"<{mid}>", "References": f"<{mid}>"},
    )
    by_token, _ = mail(to=box.email, subject=f"Re: Help [#{ticket.number}]", body="token")
    stranger, _ = mail(
        to=box.email, frm="mallory@evil.test", subject=f"Re: [#{ticket.number}]", body="me too"
    )
    same_subject, _ = mail(to=box.email, frm="bob@other.test", subject="Help", body="hi")
    for raw in (reply, by_token, stranger, same_subject):
        box.deliver(raw)
    report = await sync.sync_mailbox(app_runtime, box.id)
    assert report.as_dict()["commented"] == 2 and report.as_dict()["created"] == 2

    comments = await comments_of(app_runtime, ticket.id)
    assert [c.kind for c in comments] == ["customer", "customer"]
    assert "Any news?" in comments[0].content and "<details>" in comments[0].content
    assert "We are looking" in comments[0].content  # folded, not deleted
    tickets = await tickets_of(app_runtime, tenant.workspace_id)
    assert len(tickets) == 3
    linked = next(t for t in tickets if t.linked_ticket_id == ticket.id)
    assert linked.subject.startswith("Re: [#")  # a stranger's token: a new ticket, linked
    assert any(t.subject == "Help" and t.id != ticket.id for t in tickets)


async def test_auto_replies_bounces_and_loops(tenant: Tenant, app_runtime: Runtime) -> None:
    box = await connect_imap(tenant)
    first, mid = mail(to=box.email)
    box.deliver(first)
    await sync.sync_mailbox(app_runtime, box.id)
    [ticket] = await tickets_of(app_runtime, tenant.workspace_id)
    await tenant.patch(f"/v1/tickets/{ticket.id}", json={"status": "With User"})

    ooo, _ = mail(
        to=box.email,
        subject="Out of office",
        headers={"Auto-Submitted": "auto-replied", "In-Reply-To": f"<{mid}>"},
    )
    loop, _ = mail(to=box.email, frm=box.email, subject="our own")
    unmatched_ooo, _ = mail(to=box.email, headers={"Precedence": "bulk"})
    for raw in (ooo, loop, corpus.bounce(), unmatched_ooo):
        box.deliver(raw)
    report = (await sync.sync_mailbox(app_runtime, box.id)).as_dict()
    assert report["commented"] == 1 and report["ignored"] == 3
    [comment] = await comments_of(app_runtime, ticket.id)
    assert comment.kind == "system"
    [after] = await tickets_of(app_runtime, tenant.workspace_id)
    assert after.status == "With User"  # an auto-reply never reopens
    kinds = {r.classification for r in await ledger(app_runtime, box.id)}
    assert {"normal", "auto_reply", "loop", "bounce"} <= kinds


async def test_hard_messages_never_break_the_sync(tenant: Tenant, app_runtime: Runtime) -> None:
    box = await connect_imap(tenant)
    hard = [
        corpus.shift_jis(), corpus.gb2312_with_gbk_chars(), corpus.iso_2022_jp(),
        corpus.koi8r(), corpus.windows1251_qp(), corpus.rfc2047_subject(),
        corpus.rfc2231_filename(), corpus.attachment_only(), corpus.html_only(),
        corpus.missing_boundary(), corpus.bad_base64(), corpus.forwarded(),
        corpus.smime_signed(), corpus.calendar_invitation(), corpus.inline_image(),
        corpus.no_ids_bad_date(), corpus.deep_nesting(),
    ]  # fmt: skip
    for index, raw in enumerate(hard):
        # one identity each (the corpus reuses its Message-ID)
        box.deliver(raw.replace(b"<m1@customer.test>", f"<hard{index}@customer.test>".encode()))
    report = (await sync.sync_mailbox(app_runtime, box.id)).as_dict()
    assert report["fetched"] == len(hard) and report["failed"] == 0
    assert report["created"] + report["commented"] == len(hard)
    rows = await ledger(app_runtime, box.id)
    assert len(rows) == len(hard) and all(r.state == "processed" for r in rows)


async def test_crash_before_the_cursor_moves_duplicates_nothing(
    tenant: Tenant, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = await connect_imap(tenant)
    for n in range(7):
        box.deliver(mail(to=box.email, subject=f"crash {n}")[0])

    real_done = batch_module._Batch._done
    processed = 0

    def dying(self: Any, *args: Any) -> None:
        nonlocal processed
        processed += 1
        if processed == 5:  # the process dies inside the batch's transaction, at its fifth
            raise KeyboardInterrupt
        real_done(self, *args)

    monkeypatch.setattr(batch_module._Batch, "_done", dying)
    with pytest.raises(KeyboardInterrupt):
        await sync.sync_mailbox(app_runtime, box.id)
    assert await tickets_of(app_runtime, tenant.workspace_id) == []  # the batch is one unit
    assert (await mailbox_row(app_runtime, box.id)).sync_cursor in (None, {})  # never moved

    monkeypatch.setattr(batch_module._Batch, "_done", real_done)
    report = (await sync.sync_mailbox(app_runtime, box.id)).as_dict()
    assert report["duplicates"] == 0 and report["created"] == 7
    tickets = await tickets_of(app_runtime, tenant.workspace_id)
    assert sorted(t.subject for t in tickets) == [f"crash {n}" for n in range(7)]
    cursor = (await mailbox_row(app_runtime, box.id)).sync_cursor or {}
    assert cursor["last_uid"] == 7


async def test_concurrent_syncs_create_each_ticket_once(
    tenant: Tenant, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = await connect_imap(tenant)
    for n in range(12):
        box.deliver(mail(to=box.email, subject=f"race {n}")[0])
    # Two syncs at once through the lease: the second is refused while the first runs.
    results = await asyncio.gather(
        sync.sync_mailbox(app_runtime, box.id),
        sync.sync_mailbox(app_runtime, box.id),
        return_exceptions=True,
    )
    assert sum(isinstance(r, sync.SyncBusy) for r in results) == 1
    assert len(await tickets_of(app_runtime, tenant.workspace_id)) == 12

    # Without the lease (it expired under a stuck worker): the ledger alone decides.
    for n in range(12, 20):
        box.deliver(mail(to=box.email, subject=f"race {n}")[0])

    async def always(self: sync.Lease) -> bool:
        return True

    monkeypatch.setattr(sync.Lease, "acquire", always)
    reports = await asyncio.gather(*(sync.sync_mailbox(app_runtime, box.id) for _ in range(3)))
    assert sum(r.outcomes.get("created", 0) for r in reports) == 8
    tickets = await tickets_of(app_runtime, tenant.workspace_id)
    assert sorted(t.subject for t in tickets) == sorted(f"race {n}" for n in range(20))


async def test_same_message_ingested_twice_at_once(tenant: Tenant, app_runtime: Runtime) -> None:
    box = await connect_imap(tenant)
    mailbox = await mailbox_row(app_runtime, box.id)
    raw, _ = mail(to=box.email)
    parsed = parse_message(raw)
    results = await asyncio.gather(
        *(ingest(app_runtime, mailbox, Inbound(parsed, f"1:{n}")) for n in range(4))
    )
    assert sorted(r.outcome for r in results) == ["created", "duplicate", "duplicate", "duplicate"]
    assert (await count_threads(app_runtime, tenant.workspace_id))["tickets"] == 1


async def test_uidvalidity_change_rescans_without_doubles(
    tenant: Tenant, app_runtime: Runtime
) -> None:
    box = await connect_imap(tenant)
    for n in range(3):
        box.deliver(mail(to=box.email, subject=f"uv {n}")[0])
    await sync.sync_mailbox(app_runtime, box.id)
    before = (await mailbox_row(app_runtime, box.id)).sync_cursor or {}
    box.dovecot.reset_uidvalidity(box.user, before["uidvalidity"] + 1000)
    box.deliver(mail(to=box.email, subject="uv 3")[0])
    report = (await sync.sync_mailbox(app_runtime, box.id)).as_dict()
    assert report["fetched"] == 4 and report["duplicates"] == 3 and report["created"] == 1
    cursor = (await mailbox_row(app_runtime, box.id)).sync_cursor or {}
    assert cursor["uidvalidity"] == before["uidvalidity"] + 1000


async def test_sync_route_and_admin_sync(tenant: Tenant, app_runtime: Runtime) -> None:
    box = await connect_imap(tenant)
    box.deliver(mail(to=box.email)[0])
    result = data(await tenant.post(f"/v1/mailboxes/{box.id}/sync"))
    assert result["mailboxId"] == box.id and result["created"] == 1
    box.deliver(mail(to=box.email)[0])
    [one] = data(await tenant.post("/v1/admin/sync-emails"))
    assert one["created"] == 1


async def test_unreachable_server_is_recorded_on_the_mailbox(
    tenant: Tenant, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = await connect_imap(tenant)
    (box.dovecot.root / "users" / box.user).write_text(f"{box.user}:{{PLAIN}}changed::::::\n")
    await asyncio.sleep(1.1)  # Dovecot re-reads a changed passwd-file at most once a second
    report = await sync.sync_mailbox(app_runtime, box.id)
    assert report.state == "needs_reconnect"
    shown = data(await tenant.get(f"/v1/mailboxes/{box.id}"))
    assert shown["state"] == "needs_reconnect" and "refused" in shown["lastError"]
    assert shown["errorCount"] == 1


async def test_sync_emails_command_runs_a_sync(
    tenant: Tenant, app_runtime: Runtime, base_env: dict[str, str], database_url: str
) -> None:
    import os
    import subprocess
    import sys

    box = await connect_imap(tenant)
    box.deliver(mail(to=box.email, subject="from the command line")[0])
    env = {**os.environ, **base_env, "DATABASE_URL": database_url}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "enque.cli", "sync-emails", "--workspace-id", tenant.workspace_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"{box.id}: fetched 1, created 1" in done.stdout
    [ticket] = await tickets_of(app_runtime, tenant.workspace_id)
    assert ticket.subject == "from the command line"
