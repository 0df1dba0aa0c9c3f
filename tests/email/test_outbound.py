"""Public replies go out through the ticket's mailbox by SMTP; the copy that returns is known."""

from __future__ import annotations

from typing import Any

import pytest

from enque.core.events import Event
from enque.core.runtime import Runtime
from enque.mailboxes import outbound, sync
from enque.mailboxes.outbound import Outbox
from tests.email.mailflow import ImapBox, comments_of, connect_imap, mail, tickets_of
from tests.email.servers import shared_smtp
from tests.support.api import Tenant, data
from tests.support.helpdesk import new_ticket


@pytest.fixture
def outbox(app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Outbox:
    box: Outbox = app_runtime.services["email_outbox"]
    monkeypatch.setattr(box, "base_delay", 0.01)
    return box


async def _ticket_from_mail(
    tenant: Tenant, runtime: Runtime, customer: str
) -> tuple[ImapBox, Any, str]:
    box = await connect_imap(tenant)
    raw, mid = mail(to=box.email, frm=customer, subject="Broken invoice")
    box.deliver(raw)
    await sync.sync_mailbox(runtime, box.id)
    [ticket] = await tickets_of(runtime, tenant.workspace_id)
    return box, ticket, mid


async def test_reply_goes_out_threaded_and_its_copy_is_not_ingested(
    tenant: Tenant, app_runtime: Runtime, outbox: Outbox, events: list[Event]
) -> None:
    customer = f"cust-{tenant.workspace_id[-8:]}@customer.test"
    box, ticket, mid = await _ticket_from_mail(tenant, app_runtime, customer)
    reply = data(
        await tenant.post(
            f"/v1/tickets/{ticket.id}/reply",
            json={"content": "<p>We fixed it.</p>", "cc": ["boss@customer.test"]},
        ),
        201,
    )
    assert reply["delivery"] == "pending"
    await outbox.drain()

    [sent] = shared_smtp().to(customer)
    message = sent.message
    assert message["Subject"] == f"Re: Broken invoice [#{ticket.number}]"
    assert message["In-Reply-To"] == f"<{mid}>" and message["References"] == f"<{mid}>"
    assert message["From"].addresses[0].addr_spec == box.email
    assert "boss@customer.test" in sent.rcpt_tos and "Auto-Submitted" not in message
    shown = data(await tenant.get(f"/v1/tickets/{ticket.id}/comments"))
    [out] = [c for c in shown if c["id"] == reply["id"]]
    assert out["delivery"] == "sent" and out["deliveryAttempts"] == 1
    assert out["messageId"] == message["Message-ID"].strip("<>")
    delivery = [e for e in events if e.type == "comment.delivery"]
    assert delivery[-1].payload["delivery"] == "sent"

    # The copy (a CC to the mailbox, the Sent folder) returns: recognised, not a new message.
    box.deliver(message.as_bytes())
    answer, _ = mail(
        to=box.email,
        frm=customer,
        subject=f"Re: Broken invoice [#{ticket.number}]",
        body="Thanks!",
        headers={
            "In-Reply-To": message["Message-ID"],
            "References": f"{message['References']} {message['Message-ID']}",
        },
    )
    box.deliver(answer)
    report = (await sync.sync_mailbox(app_runtime, box.id)).as_dict()
    assert report["duplicates"] + report["ignored"] == 1 and report["commented"] == 1
    kinds = [c.kind for c in await comments_of(app_runtime, ticket.id)]
    assert kinds == ["reply", "customer"]

    # The next reply chains the References through the customer's answer.
    await tenant.post(f"/v1/tickets/{ticket.id}/reply", json={"content": "<p>Welcome</p>"})
    await outbox.drain()
    second = shared_smtp().to(customer)[-1].message
    assert second["References"].split()[0] == f"<{mid}>"
    assert second["In-Reply-To"] != message["Message-ID"]


async def test_permanent_failure_shows_the_reason(
    tenant: Tenant, app_runtime: Runtime, outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = f"gone-{tenant.workspace_id[-8:]}@customer.test"
    _, ticket, _ = await _ticket_from_mail(tenant, app_runtime, customer)
    monkeypatch.setitem(shared_smtp().reject, customer, "550 5.1.1 no such user")
    reply = data(await tenant.post(f"/v1/tickets/{ticket.id}/reply", json={"content": "x"}), 201)
    await outbox.drain()
    [out] = [c for c in await comments_of(app_runtime, ticket.id) if c.id == reply["id"]]
    assert out.delivery == "failed" and "550" in (out.delivery_error or "")
    assert out.delivery_attempts == 1


async def test_temporary_failures_are_retried_then_fail(
    tenant: Tenant, app_runtime: Runtime, outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = f"busy-{tenant.workspace_id[-8:]}@customer.test"
    _, ticket, _ = await _ticket_from_mail(tenant, app_runtime, customer)
    monkeypatch.setitem(shared_smtp().reject, customer, "451 4.3.0 try later")
    reply = data(await tenant.post(f"/v1/tickets/{ticket.id}/reply", json={"content": "x"}), 201)
    await outbox.drain()
    [out] = [c for c in await comments_of(app_runtime, ticket.id) if c.id == reply["id"]]
    assert out.delivery == "failed" and "451" in (out.delivery_error or "")
    assert out.delivery_attempts == outbound.MAX_ATTEMPTS

    # Recovered after a first deferral: sent on the second attempt.
    reply = data(await tenant.post(f"/v1/tickets/{ticket.id}/reply", json={"content": "y"}), 201)
    shared_smtp().reject.pop(customer)
    await outbox.drain()
    [out] = [c for c in await comments_of(app_runtime, ticket.id) if c.id == reply["id"]]
    assert out.delivery == "sent"


async def test_ticket_without_mailbox_uses_the_workspace_mailbox(
    tenant: Tenant, app_runtime: Runtime, outbox: Outbox
) -> None:
    ticket = await new_ticket(tenant)
    path = f"/v1/tickets/{ticket['id']}/reply"
    waiting = data(await tenant.post(path, json={"content": "x"}), 201)
    await outbox.drain()
    assert not outbox.tasks
    [out] = [c for c in await comments_of(app_runtime, ticket["id"]) if c.id == waiting["id"]]
    assert out.delivery == "pending" and out.delivery_attempts == 0  # nothing to send from

    box = await connect_imap(tenant)
    reply = data(await tenant.post(path, json={"content": "y"}), 201)
    await outbox.drain()
    [out] = [c for c in await comments_of(app_runtime, ticket["id"]) if c.id == reply["id"]]
    assert out.delivery == "sent"
    [sent] = shared_smtp().to(ticket["customer"]["email"])
    assert sent.message["From"].addresses[0].addr_spec == box.email


async def test_jobs_are_registered_and_resend_picks_stale_replies(
    tenant: Tenant, app_runtime: Runtime, outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from enque.mailboxes import hooks

    registered: dict[str, Any] = {}

    class Scheduler:
        def register(self, name: str, interval: int, job: Any) -> None:
            registered[name] = (interval, job)

    monkeypatch.setitem(app_runtime.services, "scheduler", Scheduler())
    await hooks.on_startup(app_runtime)
    assert registered[hooks.SYNC_JOB][0] == app_runtime.settings.email_sync_interval
    assert set(registered) == {hooks.SYNC_JOB, hooks.RESEND_JOB}

    # A reply left pending (no mailbox then); once one exists the resend job sends it.
    ticket = await new_ticket(tenant)
    waiting = data(
        await tenant.post(f"/v1/tickets/{ticket['id']}/reply", json={"content": "late"}), 201
    )
    await connect_imap(tenant)
    monkeypatch.setattr(outbound, "STALE_PENDING", -5)
    assert await registered[hooks.RESEND_JOB][1]() >= 1
    await outbox.drain()
    [out] = [c for c in await comments_of(app_runtime, ticket["id"]) if c.id == waiting["id"]]
    assert out.delivery == "sent"

    # The sync job (`sync_all`; here limited to this workspace) runs each active mailbox.
    [report] = await registered[hooks.SYNC_JOB][1](workspace_id=tenant.workspace_id)
    assert report.error is None


async def test_reply_carries_its_files_and_refuses_too_large_ones(
    tenant: Tenant, app_runtime: Runtime, outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = f"files-{tenant.workspace_id[-8:]}@customer.test"
    _, ticket, _ = await _ticket_from_mail(tenant, app_runtime, customer)
    pdf = b"%PDF-1.4\n" + b"0" * 2000
    uploaded = data(
        await tenant.post(
            "/v1/attachments", files={"file": ("invoice.pdf", pdf, "application/pdf")}
        ),
        201,
    )
    path = f"/v1/tickets/{ticket.id}/reply"
    body = {"content": "<p>Your invoice.</p>", "attachmentIds": [uploaded["id"]]}
    data(await tenant.post(path, json=body), 201)
    await outbox.drain()
    [sent] = shared_smtp().to(customer)
    [part] = list(sent.message.iter_attachments())
    assert part.get_filename() == "invoice.pdf" and part.get_content() == pdf

    monkeypatch.setitem(outbound.MAX_FILES_BYTES, "imap", 1000)
    again = data(
        await tenant.post("/v1/attachments", files={"file": ("big.pdf", pdf, "application/pdf")}),
        201,
    )
    refused = data(await tenant.post(path, json={**body, "attachmentIds": [again["id"]]}), 201)
    await outbox.drain()
    [out] = [c for c in await comments_of(app_runtime, ticket.id) if c.id == refused["id"]]
    assert out.delivery == "failed" and "MB" in (out.delivery_error or "")
    assert len(shared_smtp().to(customer)) == 1
