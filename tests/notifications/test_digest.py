"""Email for agents who chose it: batched into one digest per window, read from the real SMTP
test server; nothing lost when delivery fails, nothing sent twice."""

from __future__ import annotations

import asyncio

from sqlalchemy import select, update

from enque.agents.models import AgentWorkspace
from enque.core.db import now
from enque.core.mail import SystemMailer
from enque.core.runtime import Runtime
from enque.notifications import digest, hooks
from enque.notifications.digest import send_digests
from enque.notifications.models import Notification
from tests.notifications.support import person
from tests.support.api import Tenant, data
from tests.support.helpdesk import new_ticket
from tests.support.services import SmtpServer, free_port


def window(runtime: Runtime) -> int:
    return runtime.settings.notification_email_window_seconds


async def test_a_burst_of_fifty_is_one_email(
    tenant: Tenant, app_runtime: Runtime, smtp_server: SmtpServer
):
    jane = await person(app_runtime, tenant)
    quiet = await person(app_runtime, tenant)  # in-app only (the default): no mail
    await jane.settings({"event": "ticket.assigned", "channels": ["in_app", "email"]})
    tickets = [await new_ticket(tenant, subject=f"Burst {i}") for i in range(50)]
    body = {"ids": [t["id"] for t in tickets], "set": {"assigneeId": jane.agent_id}}
    results = data(await tenant.post("/v1/tickets/bulk", json=body))
    assert all(r["success"] for r in results)
    data(await tenant.patch(f"/v1/tickets/{tickets[0]['id']}", json={"assigneeId": quiet.agent_id}))
    assert (await jane.feed())[1]["unreadCount"] == 50

    start = now()
    await send_digests(app_runtime, now=start)  # the window has not passed yet
    assert smtp_server.to(jane.email) == []
    await send_digests(app_runtime, now=start + window(app_runtime) + 1)
    mails = smtp_server.to(jane.email)
    assert len(mails) == 1
    mail = mails[0].message
    assert mail["Subject"].startswith("[") and mail["Subject"].endswith("50 new notifications")
    text = mail.get_body(preferencelist=("plain",)).get_content()
    for ticket in tickets:
        assert f"#{ticket['number']} Burst " in text
        assert f"http://enque.test/tickets/{ticket['id']}" in text
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "Burst 49" in html
    # sent once: later runs find nothing for jane; the quiet agent never gets mail
    await send_digests(app_runtime, now=start + 10 * window(app_runtime))
    assert len(smtp_server.to(jane.email)) == 1
    assert smtp_server.to(quiet.email) == []
    # the feed is untouched by email
    assert (await jane.feed())[1]["unreadCount"] == 50


async def test_one_notification_names_itself(
    tenant: Tenant, app_runtime: Runtime, smtp_server: SmtpServer
):
    jane = await person(app_runtime, tenant)
    await jane.settings({"event": "mention", "channels": ["email"]})
    ticket = await new_ticket(tenant, subject="Invoice <missing>")
    content = {"content": "<p>look</p>", "mentions": [jane.agent_id]}
    data(await tenant.post(f"/v1/tickets/{ticket['id']}/notes", json=content), 201)
    await send_digests(app_runtime, now=now() + window(app_runtime) + 1)
    mails = await smtp_server.wait_for(jane.email)
    assert len(mails) == 1
    subject = mails[0].message["Subject"]
    assert subject.endswith(f"mentioned you on #{ticket['number']} Invoice <missing>")
    html = mails[0].message.get_body(preferencelist=("html",)).get_content()
    assert "Invoice &lt;missing&gt;" in html and "<missing>" not in html
    text = mails[0].message.get_body(preferencelist=("plain",)).get_content()
    assert "look" in html and "Invoice <missing>" in text


async def test_later_changes_make_a_second_digest(
    tenant: Tenant, app_runtime: Runtime, smtp_server: SmtpServer
):
    jane = await person(app_runtime, tenant)
    await jane.settings({"event": "ticket.assigned", "channels": ["email"]})
    await new_ticket(tenant, assigneeId=jane.agent_id)
    await send_digests(app_runtime, now=now() + window(app_runtime) + 1)
    assert len(smtp_server.to(jane.email)) == 1
    await new_ticket(tenant, assigneeId=jane.agent_id)
    await new_ticket(tenant, assigneeId=jane.agent_id)
    await send_digests(app_runtime, now=now() + window(app_runtime) + 1)
    mails = smtp_server.to(jane.email)
    assert len(mails) == 2 and mails[1].message["Subject"].endswith("2 new notifications")


async def test_failed_delivery_waits_for_the_next_run(
    tenant: Tenant, app_runtime: Runtime, smtp_server: SmtpServer
):
    jane = await person(app_runtime, tenant)
    await jane.settings({"event": "ticket.assigned", "channels": ["email"]})
    await new_ticket(tenant, assigneeId=jane.agent_id)
    real = app_runtime.services.get("mailer")
    dead = SystemMailer(
        f"smtp://127.0.0.1:{free_port()}", "Enque <no-reply@enque.test>", attempts=1
    )
    app_runtime.services["mailer"] = dead
    try:
        await send_digests(app_runtime, now=now() + window(app_runtime) + 1)
    finally:
        if real is None:
            del app_runtime.services["mailer"]
        else:
            app_runtime.services["mailer"] = real
    assert smtp_server.to(jane.email) == []
    async with app_runtime.db.session(write=False) as session:
        rows = list(
            (
                await session.execute(
                    select(Notification).where(Notification.agent_id == jane.agent_id)
                )
            ).scalars()
        )
    assert [(r.email_pending, r.email_batch_id, r.emailed_at) for r in rows] == [(True, None, None)]
    await send_digests(app_runtime, now=now() + window(app_runtime) + 1)
    assert len(smtp_server.to(jane.email)) == 1


async def test_digests_are_per_workspace(
    tenant: Tenant, make_tenant, app_runtime: Runtime, smtp_server: SmtpServer
):
    jane = await person(app_runtime, tenant)
    other = await make_tenant()
    eve = await person(app_runtime, other)
    for who, where in ((jane, tenant), (eve, other)):
        await who.settings({"event": "ticket.assigned", "channels": ["email"]})
        await new_ticket(where, assigneeId=who.agent_id, subject=f"For {who.agent_id}")
    await send_digests(app_runtime, now=now() + window(app_runtime) + 1)
    for who, stranger in ((jane, eve), (eve, jane)):
        mails = smtp_server.to(who.email)
        assert len(mails) == 1
        text = mails[0].message.get_body(preferencelist=("plain",)).get_content()
        assert f"For {who.agent_id}" in text and stranger.agent_id not in text


async def test_concurrent_runs_send_one_digest(
    tenant: Tenant, app_runtime: Runtime, smtp_server: SmtpServer
):
    jane = await person(app_runtime, tenant)
    await jane.settings({"event": "ticket.assigned", "channels": ["email"]})
    for _ in range(3):
        await new_ticket(tenant, assigneeId=jane.agent_id)
    moment = now() + window(app_runtime) + 1
    await asyncio.gather(*(send_digests(app_runtime, now=moment) for _ in range(3)))
    mails = smtp_server.to(jane.email)
    assert len(mails) == 1 and mails[0].message["Subject"].endswith("3 new notifications")


async def test_no_digest_for_an_agent_who_left(
    tenant: Tenant, app_runtime: Runtime, smtp_server: SmtpServer
):
    jane = await person(app_runtime, tenant)
    await jane.settings({"event": "ticket.assigned", "channels": ["email"]})
    await new_ticket(tenant, assigneeId=jane.agent_id)
    async with app_runtime.db.transaction() as session:
        await session.execute(
            update(AgentWorkspace)
            .where(AgentWorkspace.agent_id == jane.agent_id)
            .values(is_active=False)
        )
    await send_digests(app_runtime, now=now() + window(app_runtime) + 1)
    assert smtp_server.to(jane.email) == []
    async with app_runtime.db.session(write=False) as session:
        pending = await session.scalar(
            select(Notification.email_pending).where(Notification.agent_id == jane.agent_id)
        )
    assert pending is False  # dropped, not retried forever


async def test_digest_job_is_registered_with_the_scheduler(app_runtime: Runtime):
    registered: list[tuple[str, int]] = []

    class Scheduler:
        def register(self, name: str, interval: int, job) -> None:
            registered.append((name, interval))

    app_runtime.services["scheduler"] = Scheduler()
    try:
        await hooks.on_startup(app_runtime)
    finally:
        del app_runtime.services["scheduler"]
    assert registered == [(digest.JOB, digest.INTERVAL)]
