"""Automatic messages (email.md): never to automated mail or machine addresses, at most three
per sender per hour, marked `Auto-Submitted`, never quoting what came in."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from enque.activity.service import Actor
from enque.comments.models import Comment
from enque.comments.service import add_reply
from enque.core.runtime import Runtime
from enque.mailboxes import automatic, sync
from enque.mailboxes.outbound import Outbox
from enque.tickets.automation import load_ticket_facts
from tests.email.mailflow import ImapBox, comments_of, connect_imap, mail, tickets_of
from tests.email.servers import shared_smtp
from tests.support.api import Tenant, data

SECRET = "Your verification code is 771-204"


@pytest.fixture
def outbox(app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Outbox:
    box: Outbox = app_runtime.services["email_outbox"]
    monkeypatch.setattr(box, "base_delay", 0.01)
    return box


async def acknowledge_new_tickets(tenant: Tenant) -> str:
    """A rule that answers every new ticket with a canned reply; returns the rule's id."""
    canned = data(
        await tenant.post(
            "/v1/canned-replies",
            json={"name": "ack", "content": "<p>Thanks {{customer.name}}, we got it.</p>"},
        ),
        201,
    )
    rule = {
        "name": "acknowledge",
        "trigger": "ticket.created",
        "conditions": [],
        "actions": [{"type": "send_canned_reply", "value": canned["id"]}],
    }
    return str(data(await tenant.post("/v1/automations", json=rule), 201)["id"])


async def automatic_reply(runtime: Runtime, tenant: Tenant, ticket_id: str, rule: str) -> str:
    async with runtime.db.session() as session:
        comment = await add_reply(
            session,
            workspace_id=tenant.workspace_id,
            actor=Actor("automation", rule),
            ticket_id=ticket_id,
            content="<p>We are on it.</p>",
        )
    return comment.id


async def delivery(runtime: Runtime, ticket_id: str) -> dict[str, tuple[str | None, str | None]]:
    return {
        c.id: (c.delivery, c.delivery_error)
        for c in await comments_of(runtime, ticket_id)
        if c.kind == "reply"
    }


async def test_rule_acknowledges_three_times_an_hour_without_quoting(
    tenant: Tenant, app_runtime: Runtime, outbox: Outbox
) -> None:
    await acknowledge_new_tickets(tenant)
    box = await connect_imap(tenant)
    customer = f"dana-{tenant.workspace_id[-8:]}@customer.test"
    for n in range(5):
        box.deliver(mail(to=box.email, frm=customer, subject=f"code {n}", body=SECRET)[0])
    assert (await sync.sync_mailbox(app_runtime, box.id)).as_dict()["created"] == 5
    await outbox.drain()
    sent = shared_smtp().to(customer)
    assert len(sent) == 3
    for received in sent:
        assert received.message["Auto-Submitted"] == "auto-replied"
        assert received.message["X-Auto-Response-Suppress"] == "All"
        assert "771-204" not in received.message.as_string()
    replies = [
        c
        for t in await tickets_of(app_runtime, tenant.workspace_id)
        for c in await comments_of(app_runtime, t.id)
        if c.kind == "reply"
    ]
    assert len(replies) == 3  # the rule skipped the other two: no reply was even written


async def test_every_automatic_reply_is_limited_where_it_leaves(
    tenant: Tenant, app_runtime: Runtime, outbox: Outbox
) -> None:
    box = await connect_imap(tenant)
    customer = f"erin-{tenant.workspace_id[-8:]}@customer.test"
    box.deliver(mail(to=box.email, frm=customer, subject="first")[0])
    box.deliver(mail(to=box.email, frm=customer, subject="second")[0])
    await sync.sync_mailbox(app_runtime, box.id)
    one, two = await tickets_of(app_runtime, tenant.workspace_id)
    rule = "01900000-0000-7000-8000-000000000001"
    # five automatic messages to one address, on two of its tickets
    written = [
        await automatic_reply(app_runtime, tenant, ticket.id, rule)
        for ticket in (one, two, one, two, one)
    ]
    await outbox.drain()
    states = {**await delivery(app_runtime, one.id), **await delivery(app_runtime, two.id)}
    assert [states[c][0] for c in written] == ["sent"] * 3 + ["failed"] * 2
    assert all("3 automatic messages already went to" in (states[c][1] or "") for c in written[3:])
    assert len(shared_smtp().to(customer)) == 3

    # an agent's reply is not an automatic message: not limited, not marked
    agent_reply = data(
        await tenant.post(f"/v1/tickets/{one.id}/reply", json={"content": "<p>Hi</p>"}), 201
    )
    await outbox.drain()
    assert (await delivery(app_runtime, one.id))[agent_reply["id"]][0] == "sent"
    assert "Auto-Submitted" not in shared_smtp().to(customer)[-1].message

    # an hour after the first three, the window has room again
    async with app_runtime.db.transaction() as session:
        await session.execute(
            update(Comment)
            .where(Comment.id.in_(written))
            .values(created_at=Comment.created_at - automatic.WINDOW - 1)
        )
    later = await automatic_reply(app_runtime, tenant, two.id, rule)
    await outbox.drain()
    assert (await delivery(app_runtime, two.id))[later][0] == "sent"


async def test_automated_mail_and_machine_addresses_are_never_answered(
    tenant: Tenant, app_runtime: Runtime, outbox: Outbox
) -> None:
    box: ImapBox = await connect_imap(tenant)
    customer = f"finn-{tenant.workspace_id[-8:]}@customer.test"
    raw, mid = mail(to=box.email, frm=customer, subject="Where is my parcel")
    box.deliver(raw)
    box.deliver(mail(to=box.email, frm=f"no-reply@{tenant.subdomain}.test", subject="Receipt")[0])
    await sync.sync_mailbox(app_runtime, box.id)
    ticket, machine = await tickets_of(app_runtime, tenant.workspace_id)
    rule = "01900000-0000-7000-8000-000000000002"

    # the customer's out-of-office answers on the thread: the newest mail is automated
    out_of_office, _ = mail(
        to=box.email,
        frm=customer,
        subject="Automatic reply: Where is my parcel",
        body="I am away until Monday.",
        headers={"Auto-Submitted": "auto-replied", "In-Reply-To": f"<{mid}>"},
    )
    box.deliver(out_of_office)
    await sync.sync_mailbox(app_runtime, box.id)
    async with app_runtime.db.session(write=False) as session:
        facts = (await load_ticket_facts(session, tenant.workspace_id, [ticket.id]))[ticket.id]
    assert facts.sender_is_automated
    refused = await automatic_reply(app_runtime, tenant, ticket.id, rule)
    to_machine = await automatic_reply(app_runtime, tenant, machine.id, rule)
    await outbox.drain()
    assert (await delivery(app_runtime, ticket.id))[refused] == (
        "failed",
        "not sent: automatic messages never answer automated mail",
    )
    assert (await delivery(app_runtime, machine.id))[to_machine] == (
        "failed",
        "not sent: automatic messages never go to an automated sender",
    )
    assert shared_smtp().to(customer) == []

    # the person writes again: automatic messages may answer once more
    box.deliver(
        mail(
            to=box.email,
            frm=customer,
            subject="Re: Where is my parcel",
            body="Back now.",
            headers={"In-Reply-To": f"<{mid}>"},
        )[0]
    )
    await sync.sync_mailbox(app_runtime, box.id)
    async with app_runtime.db.session(write=False) as session:
        facts = (await load_ticket_facts(session, tenant.workspace_id, [ticket.id]))[ticket.id]
    assert not facts.sender_is_automated
    allowed = await automatic_reply(app_runtime, tenant, ticket.id, rule)
    await outbox.drain()
    assert (await delivery(app_runtime, ticket.id))[allowed][0] == "sent"
    assert len(shared_smtp().to(customer)) == 1
