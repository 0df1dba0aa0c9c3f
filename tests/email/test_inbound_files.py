"""Files of received mail: stored through the attachments domain, linked to the message that
carried them, `cid:` images pointing to their URLs, limits as placeholders, exactly once."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from enque.activity.models import Activity
from enque.attachments import service as attachments
from enque.attachments.models import Attachment
from enque.core.events import Event
from enque.core.runtime import Runtime
from enque.core.storage import Storage, storage_of
from enque.email.parse import parse_message
from enque.mailboxes import batch as batch_module
from enque.mailboxes import ingest as ingest_module
from enque.mailboxes import sync
from enque.mailboxes.ingest import Inbound, ingest
from tests.email.corpus import PNG
from tests.email.mailflow import (
    PDF,
    comments_of,
    connect_graph,
    connect_imap,
    ledger,
    mailbox_row,
    tickets_of,
    with_files,
)
from tests.emulators.graph import GraphEmulator
from tests.support.api import Tenant, data

EXE = b"MZ\x90\x00\x03\x00\x00\x00" + os.urandom(400)


def stored_objects(runtime: Runtime, workspace_id: str) -> set[str]:
    root = Path(storage_of(runtime).description.removeprefix("file://")) / workspace_id
    return {p.name for p in root.rglob("*") if p.is_file()}


async def files_of(runtime: Runtime, workspace_id: str) -> list[Attachment]:
    async with runtime.db.session(write=False) as session:
        rows = await session.scalars(
            select(Attachment)
            .where(Attachment.workspace_id == workspace_id)
            .order_by(Attachment.created_at, Attachment.id)
        )
        return list(rows)


async def download(tenant: Tenant, attachment_id: str) -> bytes:
    response = await tenant.get(f"/v1/attachments/{attachment_id}/content")
    assert response.status_code == 200, response.text
    return response.content


async def age(runtime: Runtime, workspace_id: str, seconds: int) -> None:
    async with runtime.db.transaction() as session:
        await session.execute(
            update(Attachment)
            .where(Attachment.workspace_id == workspace_id)
            .values(created_at=Attachment.created_at - seconds)
        )


async def test_new_ticket_keeps_files_and_inline_images(
    tenant: Tenant, app_runtime: Runtime
) -> None:
    box = await connect_imap(tenant)
    raw, _ = with_files(to=box.email, files=[("invoice.pdf", PDF)])
    box.deliver(raw)
    report = (await sync.sync_mailbox(app_runtime, box.id)).as_dict()
    assert report["created"] == 1 and report["error"] is None
    [ticket] = await tickets_of(app_runtime, tenant.workspace_id)
    shown = data(await tenant.get(f"/v1/tickets/{ticket.id}"))
    files = {f["fileName"]: f for f in shown["body"]["attachments"]}
    assert set(files) == {"logo.png", "invoice.pdf"}
    logo, pdf = files["logo.png"], files["invoice.pdf"]
    assert logo["isInline"] and logo["contentId"] == "logo@mail"
    assert logo["contentType"] == "image/png" and not pdf["isInline"]
    assert pdf["contentType"] == "application/pdf"
    assert pdf["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert all(f["ticketId"] == ticket.id and f["commentId"] is None for f in files.values())
    # the inline image points to its stored file; no cid: left
    assert f'src="/v1/attachments/{logo["id"]}/content"' in shown["body"]["content"]
    assert "cid:" not in shown["body"]["content"]
    assert await download(tenant, logo["id"]) == PNG
    assert await download(tenant, pdf["id"]) == PDF
    assert stored_objects(app_runtime, tenant.workspace_id) == {logo["id"], pdf["id"]}

    # the audit row of the message lists every part with its stored id
    async with app_runtime.db.session(write=False) as session:
        audit = (
            await session.scalars(
                select(Activity).where(
                    Activity.workspace_id == tenant.workspace_id, Activity.verb == "email.received"
                )
            )
        ).one()
    listed = {m["filename"]: m.get("attachmentId") for m in audit.after["attachments"]}
    assert listed == {"logo.png": logo["id"], "invoice.pdf": pdf["id"]}

    # a day later the sweep keeps them: they belong to the ticket's first message
    await age(app_runtime, tenant.workspace_id, 2 * 86400)
    await attachments.sweep_orphans(app_runtime)
    assert len(await files_of(app_runtime, tenant.workspace_id)) == 2
    # the ticket deleted for good: its files go at the next sweep
    async with app_runtime.db.transaction() as session:
        await session.execute(text("DELETE FROM tickets WHERE id = :t"), {"t": ticket.id})
    await attachments.sweep_orphans(app_runtime)
    assert await files_of(app_runtime, tenant.workspace_id) == []
    assert stored_objects(app_runtime, tenant.workspace_id) == set()


async def test_reply_files_go_on_its_comment(
    tenant: Tenant, app_runtime: Runtime, events: list[Event]
) -> None:
    box = await connect_imap(tenant)
    first, mid = with_files(to=box.email, html=None, subject="Broken part")
    box.deliver(first)
    await sync.sync_mailbox(app_runtime, box.id)
    [ticket] = await tickets_of(app_runtime, tenant.workspace_id)
    photo = PNG + b"another"
    reply, _ = with_files(
        to=box.email,
        subject="Re: Broken part",
        html='<p>Here is a photo</p><img src="cid:logo@mail">',
        files=[("photo-2.png", photo)],
        headers={"In-Reply-To": f"<{mid}>", "References": f"<{mid}>"},
    )
    box.deliver(reply)
    assert (await sync.sync_mailbox(app_runtime, box.id)).as_dict()["commented"] == 1
    [comment] = await comments_of(app_runtime, ticket.id)
    thread = data(await tenant.get(f"/v1/tickets/{ticket.id}/comments"))
    [shown] = [c for c in thread if c["id"] == comment.id]
    names = sorted(f["fileName"] for f in shown["attachments"])
    assert names == ["logo.png", "photo-2.png"]
    assert all(f["commentId"] == comment.id for f in shown["attachments"])
    logo = next(f for f in shown["attachments"] if f["fileName"] == "logo.png")
    assert f"/v1/attachments/{logo['id']}/content" in shown["content"]
    assert data(await tenant.get(f"/v1/tickets/{ticket.id}"))["body"]["attachments"] == []
    # the real-time event of the comment already lists its files
    [created] = [
        e
        for e in events
        if e.type == "comment.created" and e.payload["comment"]["id"] == comment.id
    ]
    assert sorted(f["fileName"] for f in created.payload["comment"]["attachments"]) == names


async def test_limits_leave_placeholders(
    tenant: Tenant, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_runtime.settings, "max_upload_mb", 1)
    monkeypatch.setattr(ingest_module, "MAX_MESSAGE_FILES", 3)
    box = await connect_imap(tenant)
    big = os.urandom(1024 * 1024 + 10)
    raw, _ = with_files(
        to=box.email,
        html=None,
        files=[
            ("huge.bin", big),
            ("setup.exe", EXE),
            ("a.txt", b"first"),
            ("b.txt", b"second"),
            ("c.txt", b"third"),
            ("d.txt", b"fourth"),
        ],
    )
    box.deliver(raw)
    assert (await sync.sync_mailbox(app_runtime, box.id)).as_dict()["created"] == 1
    [ticket] = await tickets_of(app_runtime, tenant.workspace_id)
    body = data(await tenant.get(f"/v1/tickets/{ticket.id}"))["body"]
    assert sorted(f["fileName"] for f in body["attachments"]) == ["a.txt", "b.txt", "c.txt"]
    for line in (
        f"huge.bin ({len(big)} bytes): larger than 1 MB",
        f"setup.exe ({len(EXE)} bytes): files of type",
        "d.txt (6 bytes): more than 3 files in the message",
    ):
        assert line in body["text"]
    assert len(stored_objects(app_runtime, tenant.workspace_id)) == 3


async def test_crash_after_storing_links_each_file_once(
    tenant: Tenant, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = await connect_imap(tenant)
    for n in range(3):
        box.deliver(with_files(to=box.email, subject=f"files {n}", files=[(f"f{n}.pdf", PDF)])[0])
    real_done = batch_module._Batch._done
    seen = 0

    def dying(self: Any, *args: Any) -> None:
        nonlocal seen
        seen += 1
        if seen == 2:  # the process dies inside the batch's transaction, at its second message
            raise KeyboardInterrupt
        real_done(self, *args)

    monkeypatch.setattr(batch_module._Batch, "_done", dying)
    with pytest.raises(KeyboardInterrupt):
        await sync.sync_mailbox(app_runtime, box.id)
    monkeypatch.setattr(batch_module._Batch, "_done", real_done)
    # the dead batch's files are stored but linked to nothing
    unlinked = [f for f in await files_of(app_runtime, tenant.workspace_id) if not f.linked_at]
    assert len(unlinked) == 6

    report = (await sync.sync_mailbox(app_runtime, box.id)).as_dict()
    assert report["created"] == 3 and report["duplicates"] == 0
    linked = [f for f in await files_of(app_runtime, tenant.workspace_id) if f.linked_at]
    assert len(linked) == 6  # logo + pdf on each of the three tickets, once
    by_ticket: dict[str | None, list[str]] = {}
    for f in linked:
        by_ticket.setdefault(f.ticket_id, []).append(f.file_name)
    assert len(by_ticket) == 3 and all(len(names) == 2 for names in by_ticket.values())

    # the leftovers are orphans: swept with their objects after a day
    await age(app_runtime, tenant.workspace_id, 86400 + 5)
    assert await attachments.sweep_orphans(app_runtime) == 6
    left = await files_of(app_runtime, tenant.workspace_id)
    assert {f.id for f in left} == {f.id for f in linked}
    assert stored_objects(app_runtime, tenant.workspace_id) == {f.id for f in linked}


async def test_concurrent_ingests_of_one_message_keep_one_set_of_files(
    tenant: Tenant, app_runtime: Runtime
) -> None:
    box = await connect_imap(tenant)
    mailbox = await mailbox_row(app_runtime, box.id)
    raw, _ = with_files(to=box.email, files=[("report.pdf", PDF)])
    parsed = parse_message(raw)
    results = await asyncio.gather(
        *(ingest(app_runtime, mailbox, Inbound(parsed, f"1:{n}")) for n in range(4))
    )
    assert sorted(r.outcome for r in results) == ["created", "duplicate", "duplicate", "duplicate"]
    rows = await files_of(app_runtime, tenant.workspace_id)
    assert len(rows) == 2 and all(r.linked_at for r in rows)  # the losers' files are gone
    assert stored_objects(app_runtime, tenant.workspace_id) == {r.id for r in rows}


async def test_storage_down_stops_the_sync_and_loses_nothing(
    tenant: Tenant, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = await connect_imap(tenant)
    box.deliver(with_files(to=box.email, files=[("x.pdf", PDF)])[0])

    async def broken(self: Storage, key: str, *args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Storage, "put_bytes", broken)
    report = await sync.sync_mailbox(app_runtime, box.id)
    assert report.error and "file storage failed" in report.error and report.state == "active"
    assert await tickets_of(app_runtime, tenant.workspace_id) == []
    assert await ledger(app_runtime, box.id) == []  # not a dead letter: fetched again later
    assert await files_of(app_runtime, tenant.workspace_id) == []
    monkeypatch.undo()
    report = await sync.sync_mailbox(app_runtime, box.id)
    assert report.as_dict()["created"] == 1 and report.error is None
    assert len(await files_of(app_runtime, tenant.workspace_id)) == 2


async def test_ignored_mail_stores_nothing(tenant: Tenant, app_runtime: Runtime) -> None:
    box = await connect_imap(tenant)
    raw, _ = with_files(
        to=box.email, frm="MAILER-DAEMON@customer.test", files=[("returned.eml", PDF)]
    )
    box.deliver(raw)
    assert (await sync.sync_mailbox(app_runtime, box.id)).as_dict()["ignored"] == 1
    assert await files_of(app_runtime, tenant.workspace_id) == []
    assert stored_objects(app_runtime, tenant.workspace_id) == set()


async def test_merge_moves_first_message_files_to_a_comment(
    tenant: Tenant, app_runtime: Runtime
) -> None:
    box = await connect_imap(tenant)
    box.deliver(with_files(to=box.email, subject="target", html=None)[0])
    box.deliver(with_files(to=box.email, subject="source", files=[("s.pdf", PDF)])[0])
    await sync.sync_mailbox(app_runtime, box.id)
    target, source = await tickets_of(app_runtime, tenant.workspace_id)
    path = f"/v1/tickets/{target.id}/merge"
    data(await tenant.post(path, json={"sourceTicketIds": [source.id]}))
    thread = data(await tenant.get(f"/v1/tickets/{target.id}/comments"))
    [moved] = [c for c in thread if c["attachments"]]
    assert moved["kind"] == "customer" and "See the logo" in moved["content"]
    assert sorted(f["fileName"] for f in moved["attachments"]) == ["logo.png", "s.pdf"]
    assert all(f["ticketId"] == target.id for f in moved["attachments"])
    assert data(await tenant.get(f"/v1/tickets/{target.id}"))["body"]["attachments"] == []


async def test_graph_files_large_by_value_and_over_limit_not_downloaded(
    tenant: Tenant,
    app_runtime: Runtime,
    microsoft: GraphEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app_runtime.settings, "max_upload_mb", 1)
    microsoft.inline_attachment_limit = 1000  # bigger files only through $value
    mailbox_id, user = await connect_graph(app_runtime, tenant, microsoft)
    big = os.urandom(1024 * 1024 + 10)
    raw, _ = with_files(to=user.mail, files=[("large.pdf", PDF), ("huge.bin", big)])
    microsoft.deliver(user, raw)
    report = (await sync.sync_mailbox(app_runtime, mailbox_id)).as_dict()
    assert report["created"] == 1 and report["error"] is None
    assert microsoft.calls["attachment_value"] == 1  # large.pdf; huge.bin never downloaded
    [ticket] = await tickets_of(app_runtime, tenant.workspace_id)
    body = data(await tenant.get(f"/v1/tickets/{ticket.id}"))["body"]
    files = {f["fileName"]: f for f in body["attachments"]}
    assert set(files) == {"logo.png", "large.pdf"}
    assert await download(tenant, files["large.pdf"]["id"]) == PDF
    assert f'src="/v1/attachments/{files["logo.png"]["id"]}/content"' in body["content"]
    assert f"huge.bin ({len(big)} bytes): larger than 1 MB" in body["text"]
