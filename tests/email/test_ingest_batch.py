"""A fetch batch ingested set-based (`ingest_batch`) ends as the same messages ingested one by
one (`ingest`): the same tickets, comments, customers, ledger rows, audit rows and events."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import Text, cast, func, select

from enque.activity.models import Activity
from enque.attachments.models import Attachment
from enque.core.events import Event
from enque.core.runtime import Runtime
from enque.customers.models import User
from enque.email.parse import parse_message
from enque.mailboxes import batch as batch_module
from enque.mailboxes import ingest as ingest_module
from enque.mailboxes.batch import ingest_batch
from enque.mailboxes.ingest import Inbound, IngestResult, context_for, ingest
from enque.tickets import search
from tests.email.mailflow import (
    PDF,
    comments_of,
    connect_imap,
    ledger,
    mail,
    mailbox_row,
    tickets_of,
    with_files,
)
from tests.support.api import Tenant

Make = Callable[..., Awaitable[Tenant]]


def _reply(mid: str) -> dict[str, str]:
    return {"In-Reply-To": f"<{mid}>", "References": f"<{mid}>"}


def mixed_batch(address: str, earlier: str) -> list[bytes]:
    """New conversations, replies to an earlier ticket, replies within the batch (to a new
    ticket and to a reply), a loop, a bounce, auto-replies with and without a thread, a
    second copy of a message, a new customer writing twice, a message with files."""
    first, first_id = mail(to=address, frm="Bob <bob@customer.test>", subject="Order 1")
    to_old, to_old_id = mail(to=address, subject="Re: Help", headers=_reply(earlier))
    return [
        first,
        to_old,
        mail(to=address, frm="bob@customer.test", subject="Re: Order 1", headers=_reply(first_id))[
            0
        ],
        mail(to=address, subject="Re: Re: Help", body="again", headers=_reply(to_old_id))[0],
        mail(to=address, frm=address, subject="Our own mail")[0],
        mail(to=address, frm="MAILER-DAEMON@mx.customer.test", subject="Undelivered")[0],
        mail(to=address, subject="Out of office", headers={"Auto-Submitted": "auto-replied"})[0],
        mail(
            to=address,
            frm="bob@customer.test",
            subject="Out of office",
            headers={"Auto-Submitted": "auto-replied", **_reply(first_id)},
        )[0],
        first,  # the same message again
        mail(to=address, frm="Carol <carol@new.test>", subject="Hello")[0],
        mail(to=address, frm="carol@new.test", subject="Hello again")[0],
        with_files(to=address, frm="dave@new.test", files=[("invoice.pdf", PDF)])[0],
    ]


async def _box(make_tenant: Make, runtime: Runtime) -> tuple[Tenant, Any, str]:
    """A workspace with a mailbox and one ticket opened by mail; its Message-ID."""
    tenant = await make_tenant()
    box = await connect_imap(tenant)
    mailbox = await mailbox_row(runtime, box.id)
    raw, mid = mail(to=box.email, subject="Help")
    assert (await ingest(runtime, mailbox, Inbound(parse_message(raw), "1:1"))).outcome == "created"
    return tenant, mailbox, mid


def _inbound(raws: list[bytes]) -> list[tuple[Inbound, bytes | None]]:
    return [(Inbound(parse_message(raw), f"1:{n + 2}"), raw) for n, raw in enumerate(raws)]


async def _shape(runtime: Runtime, workspace_id: str, mailbox_id: str) -> dict[str, Any]:
    """What the workspace holds, without ids: tickets by number with their comments and
    search documents, the customers, the ledger, the audit verbs and the linked files."""
    tickets = await tickets_of(runtime, workspace_id)
    numbers = {t.id: t.number for t in tickets}
    threads = {}
    for t in tickets:
        comments = await comments_of(runtime, t.id)
        threads[t.number] = (
            t.subject,
            t.status,
            numbers.get(t.linked_ticket_id or ""),
            [(c.kind, c.text) for c in comments],
        )
    rows = await ledger(runtime, mailbox_id)
    async with runtime.db.session(write=False) as session:
        users = await session.scalars(
            select(User.email).where(User.workspace_id == workspace_id).order_by(User.email)
        )
        verbs = await session.execute(
            select(Activity.verb, func.count())
            .where(Activity.workspace_id == workspace_id)
            .group_by(Activity.verb)
        )
        files = await session.execute(
            select(Attachment.file_name, Attachment.ticket_id).where(
                Attachment.workspace_id == workspace_id, Attachment.linked_at.is_not(None)
            )
        )
        if search.is_sqlite(session):
            fts, docs = search.sqlite_fts, search.sqlite_docs
            found = await session.execute(
                select(docs.c.ticket_id, fts.c.document)
                .join(fts, fts.c.rowid == docs.c.id)
                .where(docs.c.workspace_id == workspace_id)
            )
        else:
            pg = search.pg_search
            found = await session.execute(
                select(pg.c.ticket_id, cast(pg.c.document, Text)).where(
                    pg.c.workspace_id == workspace_id
                )
            )
        documents = {numbers[tid]: document for tid, document in found.tuples()}
        return {
            "threads": threads,
            "search": documents,
            "customers": list(users),
            "ledger": sorted(
                (r.state, r.classification or "", numbers.get(r.ticket_id or "", 0)) for r in rows
            ),
            "verbs": dict(verbs.tuples().all()),
            "files": sorted((name, numbers[tid]) for name, tid in files.tuples()),
        }


def _events(events: list[Event], workspace_id: str) -> Counter[str]:
    return Counter(e.type for e in events if e.workspace_id == workspace_id)


async def test_a_batch_ends_as_one_message_at_a_time(
    make_tenant: Make, app_runtime: Runtime, events: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    alone, alone_box, alone_first = await _box(make_tenant, app_runtime)
    together, together_box, together_first = await _box(make_tenant, app_runtime)
    context = await context_for(app_runtime, alone_box)
    one_by_one = [
        (await ingest(app_runtime, alone_box, inbound, raw=raw, context=context)).outcome
        for inbound, raw in _inbound(mixed_batch(alone_box.email, alone_first))
    ]

    def no_single_ingest(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the batch went one message at a time")

    monkeypatch.setattr(ingest_module, "_process", no_single_ingest)
    context = await context_for(app_runtime, together_box)
    batch = _inbound(mixed_batch(together_box.email, together_first))
    results = await ingest_batch(app_runtime, together_box, batch, context)

    assert [r.outcome for r in results] == one_by_one
    assert one_by_one == [
        "created", "commented", "commented", "commented", "ignored", "ignored", "ignored",
        "commented", "duplicate", "created", "created", "created",
    ]  # fmt: skip
    expected = await _shape(app_runtime, alone.workspace_id, alone_box.id)
    got = await _shape(app_runtime, together.workspace_id, together_box.id)
    assert got == expected
    assert got["customers"] == [
        "alice@customer.test", "bob@customer.test", "carol@new.test", "dave@new.test"
    ]  # fmt: skip
    assert got["threads"][1][3] == [
        ("customer", "Hello, my order did not arrive."),
        ("customer", "again"),
    ]  # the reply to a reply of this batch went on the first ticket
    assert [kind for kind, _ in got["threads"][2][3]] == ["customer", "system"]
    assert len(got["search"]) == len(got["threads"])  # rebuilt once, at the end of the batch
    assert "again" in got["search"][1].split() or "'again'" in got["search"][1]
    assert got["verbs"]["email.received"] == 1 + 8  # each message written has its own
    assert got["verbs"]["comment.created"] == 4 and got["verbs"]["ticket.created"] == 1 + 4
    assert _events(events, together.workspace_id) == _events(events, alone.workspace_id)
    assert _events(events, together.workspace_id)["comment.created"] == 4


async def test_a_conflict_sends_the_batch_one_message_at_a_time(
    tenant: Tenant, app_runtime: Runtime
) -> None:
    box = await connect_imap(tenant)
    mailbox = await mailbox_row(app_runtime, box.id)
    context = await context_for(app_runtime, mailbox)
    taken = with_files(to=box.email, subject="Taken", files=[("a.pdf", PDF)])[0]
    free = with_files(to=box.email, subject="Free", files=[("b.pdf", PDF)])[0]
    batch = _inbound([taken, free])
    # another sync claims the first message after this batch read the ledger
    assert (await ingest(app_runtime, mailbox, batch[0][0], raw=taken)).outcome == "created"

    results = await ingest_batch(app_runtime, mailbox, batch, context)
    assert [r.outcome for r in results] == ["duplicate", "created"]
    assert sorted(t.subject for t in await tickets_of(app_runtime, tenant.workspace_id)) == [
        "Free",
        "Taken",
    ]
    assert len(await ledger(app_runtime, mailbox.id)) == 2
    async with app_runtime.db.session(write=False) as session:
        files = (
            await session.execute(
                select(Attachment.file_name, Attachment.linked_at.is_not(None)).where(
                    Attachment.workspace_id == tenant.workspace_id
                )
            )
        ).all()
    # each message's files linked once; what the failed batch stored is gone
    assert sorted(files) == sorted(
        [("a.pdf", True), ("logo.png", True), ("b.pdf", True), ("logo.png", True)]
    )


async def test_a_failing_message_fails_alone(
    tenant: Tenant, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = await connect_imap(tenant)
    mailbox = await mailbox_row(app_runtime, box.id)
    real = ingest_module._process

    async def failing(*args: Any, **kwargs: Any) -> Any:
        if "poison" in args[3].parsed.subject:
            raise RuntimeError("broken")
        return await real(*args, **kwargs)

    real_comments = batch_module.add_customer_messages

    async def failing_comments(*args: Any, **kwargs: Any) -> Any:
        if any("poison" in (i.subject or "") for i in kwargs["items"]):
            raise RuntimeError("broken")
        return await real_comments(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "_process", failing)
    monkeypatch.setattr(batch_module, "add_customer_messages", failing_comments)
    first, first_id = mail(to=box.email, subject="Order")
    raws = [
        first,
        mail(to=box.email, subject="Re: poison", headers=_reply(first_id))[0],
        mail(to=box.email, subject="Other")[0],
    ]
    context = await context_for(app_runtime, mailbox)
    results = await ingest_batch(app_runtime, mailbox, _inbound(raws), context)
    assert [r.outcome for r in results] == ["created", "failed", "created"]
    failed = [r for r in await ledger(app_runtime, mailbox.id) if r.state == "failed"]
    assert [r.id for r in failed] == [results[1].ledger_id]


async def test_threading_stays_in_the_workspace(make_tenant: Make, app_runtime: Runtime) -> None:
    _, _, other_first = await _box(make_tenant, app_runtime)
    tenant, mailbox, _ = await _box(make_tenant, app_runtime)
    context = await context_for(app_runtime, mailbox)
    raws = [
        mail(to=mailbox.email, subject="Re: Help", headers=_reply(other_first))[0],
        mail(to=mailbox.email, subject="[#1] and more")[0],  # a participant's token: ticket 1
    ]
    results = await ingest_batch(app_runtime, mailbox, _inbound(raws), context)
    tickets = await tickets_of(app_runtime, tenant.workspace_id)
    assert [r.outcome for r in results] == ["created", "commented"]
    assert results[0].ticket_id == tickets[1].id and results[1].ticket_id == tickets[0].id
    assert {t.workspace_id for t in tickets} == {tenant.workspace_id}


async def test_an_empty_batch_and_one_message_twice(tenant: Tenant, app_runtime: Runtime) -> None:
    box = await connect_imap(tenant)
    mailbox = await mailbox_row(app_runtime, box.id)
    context = await context_for(app_runtime, mailbox)
    assert await ingest_batch(app_runtime, mailbox, [], context) == []
    duplicate: list[IngestResult] = await ingest_batch(
        app_runtime, mailbox, _inbound([mail(to=box.email)[0]]) * 2, context
    )
    assert [r.outcome for r in duplicate] == ["created", "duplicate"]


async def test_conversations_thread_within_and_across_batches(
    tenant: Tenant, app_runtime: Runtime
) -> None:
    box = await connect_imap(tenant)
    mailbox = await mailbox_row(app_runtime, box.id)
    context = await context_for(app_runtime, mailbox)
    second, second_id = mail(to=box.email, subject="RE: Quote")
    raws = [
        (mail(to=box.email, subject="Quote")[0], "c1"),
        (second, "c1"),  # no references: Graph's conversation
        (mail(to=box.email, subject="Other")[0], "c2"),
        (mail(to=box.email, subject="RE: RE: Quote", headers=_reply(second_id))[0], None),
    ]
    batch = [
        (Inbound(parse_message(raw), f"g{n}", conversation), None)
        for n, (raw, conversation) in enumerate(raws)
    ]
    results = await ingest_batch(app_runtime, mailbox, batch, context)
    assert [r.outcome for r in results] == ["created", "commented", "created", "commented"]
    assert results[1].ticket_id == results[0].ticket_id == results[3].ticket_id
    later = Inbound(parse_message(mail(to=box.email, subject="RE: Other")[0]), "g9", "c2")
    [result] = await ingest_batch(app_runtime, mailbox, [(later, None)], context)
    assert (result.outcome, result.ticket_id) == ("commented", results[2].ticket_id)
    async with app_runtime.db.session(write=False) as session:
        how = await session.scalars(
            select(Activity.after).where(
                Activity.workspace_id == tenant.workspace_id, Activity.verb == "email.received"
            )
        )
        assert sorted(str(a["threadedBy"]) for a in how) == [
            "None", "None", "conversation", "conversation", "references"
        ]  # fmt: skip
