"""Without `SMTP_URL`, notification digests go out from the workspace's own mailbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from enque.core.db import now
from enque.core.mail import SystemMailer
from enque.core.runtime import Runtime
from enque.notifications.digest import send_digests
from enque.notifications.models import Notification
from tests.email.mailflow import connect_imap
from tests.email.servers import shared_smtp
from tests.notifications.support import person
from tests.support.api import Tenant
from tests.support.helpdesk import new_ticket


@pytest.fixture
def no_smtp_url(app_runtime: Runtime) -> Iterator[None]:
    real = app_runtime.services.get("mailer")
    app_runtime.services["mailer"] = SystemMailer(None, "Enque <no-reply@enque.test>")
    yield
    if real is None:
        del app_runtime.services["mailer"]
    else:
        app_runtime.services["mailer"] = real


def due(runtime: Runtime) -> int:
    return now() + runtime.settings.notification_email_window_seconds + 1


async def pending(runtime: Runtime, agent_id: str) -> list[bool]:
    async with runtime.db.session(write=False) as session:
        rows = await session.execute(
            select(Notification.email_pending).where(Notification.agent_id == agent_id)
        )
    return list(rows.scalars())


async def test_digest_waits_for_a_mailbox_then_goes_out_from_it(
    tenant: Tenant, app_runtime: Runtime, no_smtp_url: None
) -> None:
    jane = await person(app_runtime, tenant)
    await jane.settings({"event": "ticket.assigned", "channels": ["email"]})
    await new_ticket(tenant, subject="Printer on fire", assigneeId=jane.agent_id)

    assert await send_digests(app_runtime, now=due(app_runtime)) == 0
    assert shared_smtp().to(jane.email) == []
    assert await pending(app_runtime, jane.agent_id) == [True]  # kept for the next run

    box = await connect_imap(tenant)
    assert await send_digests(app_runtime, now=due(app_runtime)) == 1
    [sent] = shared_smtp().to(jane.email)
    message = sent.message
    assert message["From"].addresses[0].addr_spec == box.email
    assert message["Auto-Submitted"] == "auto-generated"
    assert "Printer on fire" in message.get_body(preferencelist=("plain",)).get_content()
    assert await pending(app_runtime, jane.agent_id) == [False]
    assert await send_digests(app_runtime, now=due(app_runtime)) == 0  # sent once
    assert len(shared_smtp().to(jane.email)) == 1
