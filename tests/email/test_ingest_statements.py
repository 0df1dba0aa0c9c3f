"""What ingested messages cost in SQL statements, so the count cannot silently grow back."""

from __future__ import annotations

from enque.core.runtime import Runtime
from enque.mailboxes import sync
from tests.email.mailflow import ImapBox, connect_imap, count_threads, mail
from tests.support.api import Tenant
from tests.support.statements import statements

# A batch is ingested set-based: a constant number of statements for the sync and its batch
# (ledger, threading, customers, ticket numbers, tickets and bodies, comments, the replied
# tickets' locks and updates, search documents (rebuilt once for the batch), event summaries,
# audit rows, each one statement for the batch) and its after-commit reactions (the
# notifications read the tickets of the batch's customer messages once). Measured: 29
# statements for a sync of 1 + 1 messages and 27 for 3 + 3 on SQLite; 29 or 30 and 28 on
# PostgreSQL, whose runs differ by a few reads of per-workspace facts (before: 33 and 33 on
# SQLite, 31 to 34 on PostgreSQL; 11.5 per message when each message had its own transaction).
PER_MESSAGE = 1.0
PER_BATCH = 32  # a sync of one batch, the message-dependent part taken out


def conversations(box: ImapBox, count: int) -> list[str]:
    """`count` new conversations from known customers, delivered; their Message-IDs."""
    ids = []
    for n in range(count):
        raw, mid = mail(to=box.email, frm=f"c{n}@customer.test", subject=f"Order {n}")
        box.deliver(raw)
        ids.append(mid)
    return ids


def replies(box: ImapBox, ids: list[str]) -> None:
    for n, mid in enumerate(ids):
        headers = {"In-Reply-To": f"<{mid}>", "References": f"<{mid}>"}
        box.deliver(mail(to=box.email, frm=f"c{n}@customer.test", headers=headers)[0])


async def test_ingest_statements_per_message(tenant: Tenant, app_runtime: Runtime) -> None:
    box = await connect_imap(tenant)
    first = conversations(box, 6)  # the customers exist from here on
    await sync.sync_mailbox(app_runtime, box.id)

    async def batch(size: int) -> int:
        """Statements of one sync of `size` new conversations and `size` replies."""
        replies(box, first[:size])
        conversations(box, size)
        with statements(app_runtime) as seen:
            report = await sync.sync_mailbox(app_runtime, box.id)
        assert report.as_dict()["created"] == size and report.as_dict()["commented"] == size
        return len(seen)

    small, large = await batch(1), await batch(3)
    per_message = (large - small) / 4  # what the sync itself costs drops out
    assert per_message <= PER_MESSAGE, per_message
    assert small - 2 * per_message <= PER_BATCH, small
    assert await count_threads(app_runtime, tenant.workspace_id) == {"tickets": 10, "comments": 4}
