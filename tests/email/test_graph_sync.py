"""Microsoft 365 mailboxes through the Graph emulator: delta paging, throttling, tokens, replies."""

from __future__ import annotations

import base64
import email
import email.policy
from typing import Any

import pytest

from enque.core.runtime import Runtime
from enque.mailboxes import batch as batch_module
from enque.mailboxes import sync
from enque.mailboxes.outbound import Outbox
from tests.email.mailflow import (
    comments_of,
    connect_graph,
    ledger,
    mail,
    mailbox_row,
    tickets_of,
)
from tests.emulators.graph import GraphEmulator
from tests.support.api import Tenant, data


async def test_delta_sync_pages_and_resumes(
    tenant: Tenant, app_runtime: Runtime, microsoft: GraphEmulator
) -> None:
    mailbox_id, user = await connect_graph(app_runtime, tenant, microsoft)
    for n in range(12):
        microsoft.deliver(user, mail(to=user.mail, subject=f"graph {n}")[0])
    report = (await sync.sync_mailbox(app_runtime, mailbox_id)).as_dict()
    assert report["created"] == 12 and report["error"] is None
    assert microsoft.calls["delta"] == 3  # pages of 5, 5, 2
    cursor = (await mailbox_row(app_runtime, mailbox_id)).sync_cursor or {}
    assert "$deltatoken" in cursor["delta_link"]

    # Only what changed since the delta link; a moved message (new Graph id) is not new.
    first = next(iter(user.folder("inbox").messages))  # type: ignore[union-attr]
    microsoft.move(user, first, "archive")
    microsoft.move(user, next(iter(user.folder("archive").messages)), "inbox")  # type: ignore[union-attr]
    microsoft.deliver(user, mail(to=user.mail, subject="graph new")[0])
    again = (await sync.sync_mailbox(app_runtime, mailbox_id)).as_dict()
    assert again["created"] == 1 and again["duplicates"] == 1
    assert len(await tickets_of(app_runtime, tenant.workspace_id)) == 13


async def test_conversation_threads_and_attachments(
    tenant: Tenant, app_runtime: Runtime, microsoft: GraphEmulator
) -> None:
    from tests.email import corpus

    mailbox_id, user = await connect_graph(app_runtime, tenant, microsoft)
    raw, _ = mail(to=user.mail, subject="Quote request")
    microsoft.deliver(user, raw)
    await sync.sync_mailbox(app_runtime, mailbox_id)
    [ticket] = await tickets_of(app_runtime, tenant.workspace_id)
    assert ticket.conversation_id

    # A reply whose client dropped In-Reply-To: threaded by Graph's conversation id.
    reply, _ = mail(to=user.mail, subject="RE: Quote request", body="and one more thing")
    message = microsoft.deliver(user, reply)
    message.conversation_id = ticket.conversation_id
    microsoft.deliver(user, corpus.inline_image().replace(b"m1@customer.test", b"img@c.test"))
    report = (await sync.sync_mailbox(app_runtime, mailbox_id)).as_dict()
    assert report["commented"] == 1 and report["created"] == 1
    [comment] = await comments_of(app_runtime, ticket.id)
    assert "one more thing" in comment.content
    assert microsoft.calls["list_attachments"] >= 1


async def test_throttling_and_expired_tokens(
    tenant: Tenant, app_runtime: Runtime, microsoft: GraphEmulator
) -> None:
    mailbox_id, user = await connect_graph(app_runtime, tenant, microsoft)
    for n in range(3):
        microsoft.deliver(user, mail(to=user.mail, subject=f"slow {n}")[0])
    microsoft.throttle(2, retry_after=1, path_contains="delta")
    microsoft.advance(2 * 3600)  # the stored access token has expired at Microsoft
    report = (await sync.sync_mailbox(app_runtime, mailbox_id)).as_dict()
    assert report["created"] == 3 and report["error"] is None
    assert microsoft.calls["token"] == 1  # refreshed once, the new refresh token stored
    mailbox = data(await tenant.get(f"/v1/mailboxes/{mailbox_id}"))
    assert mailbox["state"] == "active"


async def test_revoked_refresh_token_needs_reconnect(
    tenant: Tenant, app_runtime: Runtime, microsoft: GraphEmulator, events: list[Any]
) -> None:
    mailbox_id, user = await connect_graph(app_runtime, tenant, microsoft)
    microsoft.revoke(user)
    microsoft.advance(2 * 3600)
    report = await sync.sync_mailbox(app_runtime, mailbox_id)
    assert report.state == "needs_reconnect" and "invalid_grant" in (report.error or "")
    shown = data(await tenant.get(f"/v1/mailboxes/{mailbox_id}"))
    assert shown["state"] == "needs_reconnect"
    status = [e for e in events if e.type == "mailbox.status"]
    assert status and status[-1].payload["state"] == "needs_reconnect"


async def test_crash_mid_delta_round_resumes_without_doubles(
    tenant: Tenant, app_runtime: Runtime, microsoft: GraphEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailbox_id, user = await connect_graph(app_runtime, tenant, microsoft)
    for n in range(11):
        microsoft.deliver(user, mail(to=user.mail, subject=f"resume {n}")[0])
    real_done = batch_module._Batch._done
    seen = 0

    def dying(self: Any, *args: Any) -> None:
        nonlocal seen
        seen += 1
        if seen == 8:
            raise KeyboardInterrupt
        real_done(self, *args)

    monkeypatch.setattr(batch_module._Batch, "_done", dying)
    with pytest.raises(KeyboardInterrupt):
        await sync.sync_mailbox(app_runtime, mailbox_id)
    cursor = (await mailbox_row(app_runtime, mailbox_id)).sync_cursor or {}
    assert "next_link" in cursor  # the first page is committed, the second is not
    assert len(await ledger(app_runtime, mailbox_id)) == 5
    monkeypatch.setattr(batch_module._Batch, "_done", real_done)
    report = (await sync.sync_mailbox(app_runtime, mailbox_id)).as_dict()
    assert report["created"] == 6 and report["duplicates"] == 0
    subjects = sorted(t.subject for t in await tickets_of(app_runtime, tenant.workspace_id))
    assert subjects == sorted(f"resume {n}" for n in range(11))
    assert len(await ledger(app_runtime, mailbox_id)) == 11


async def test_reply_sent_through_graph_with_our_headers(
    tenant: Tenant, app_runtime: Runtime, microsoft: GraphEmulator
) -> None:
    mailbox_id, user = await connect_graph(app_runtime, tenant, microsoft)
    raw, mid = mail(to=user.mail, subject="Where is it")
    microsoft.deliver(user, raw)
    await sync.sync_mailbox(app_runtime, mailbox_id)
    [ticket] = await tickets_of(app_runtime, tenant.workspace_id)
    reply = data(
        await tenant.post(f"/v1/tickets/{ticket.id}/reply", json={"content": "<p>Here</p>"}), 201
    )
    outbox: Outbox = app_runtime.services["email_outbox"]
    await outbox.drain()
    [sent] = [s for s in microsoft.sent if s.user_id == user.id]
    assert sent.kind == "mime"
    message = email.message_from_bytes(sent.payload, policy=email.policy.default)
    assert message["In-Reply-To"] == f"<{mid}>"
    assert message["Subject"] == f"Re: Where is it [#{ticket.number}]"
    [out] = [c for c in await comments_of(app_runtime, ticket.id) if c.id == reply["id"]]
    assert out.delivery == "sent" and out.message_id == message["Message-ID"].strip("<>")
    assert base64.b64encode(sent.payload)  # the MIME went as base64 text/plain
