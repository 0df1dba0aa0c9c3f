"""The scheduled-replies job: `send_due_replies` every `INTERVAL` seconds.

Registered with the process's scheduler (`runtime.services["scheduler"].register(name,
interval, job)`) when it has one. The job is safe to run in several processes at once: each
reply is claimed by one sender (service.py), so the scheduler's run-once lease is a saving,
not a requirement. `runtime.services["held_attachment_ids"]` names the uploads that pending
scheduled replies will link, for the attachments' orphan sweep to keep.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import func, select

from enque.core.db import now
from enque.core.metrics import QUEUE_DEPTH
from enque.core.runtime import Runtime
from enque.scheduled_replies.models import ScheduledReply
from enque.scheduled_replies.service import held_attachment_ids, send_due_replies

JOB = "replies.scheduled"
INTERVAL = 5


def setup(runtime: Runtime) -> None:
    runtime.services["send_due_replies"] = partial(send_due_replies, runtime)
    runtime.services["held_attachment_ids"] = held_attachment_ids
    runtime.services.setdefault("metric_probes", []).append(count_due)


async def count_due(runtime: Runtime) -> None:
    """Queue depth for `/metrics`: scheduled replies whose time has come (index-only count)."""
    async with runtime.db.session(write=False) as session:
        due = await session.scalar(
            select(func.count())
            .select_from(ScheduledReply)
            .where(ScheduledReply.status == "pending", ScheduledReply.next_attempt_at <= now())
        )
    QUEUE_DEPTH.labels("scheduled_replies_due").set(due or 0)


async def on_startup(runtime: Runtime) -> None:
    """Every set-up hook has run: the scheduler, when the process has one, is registered."""
    scheduler = runtime.services.get("scheduler")
    if scheduler is not None:
        scheduler.register(JOB, INTERVAL, partial(send_due_replies, runtime))
