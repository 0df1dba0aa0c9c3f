"""The scheduled-replies job: `send_due_replies` every `INTERVAL` seconds.

Registered with the process's scheduler (`runtime.services["scheduler"].register(name,
interval, job)`) when it has one. The job is safe to run in several processes at once: each
reply is claimed by one sender (service.py), so the scheduler's run-once lease is a saving,
not a requirement. `runtime.services["held_attachment_ids"]` names the uploads that pending
scheduled replies will link, for the attachments' orphan sweep to keep.
"""

from __future__ import annotations

from functools import partial

from enque.core.runtime import Runtime
from enque.scheduled_replies.service import held_attachment_ids, send_due_replies

JOB = "replies.scheduled"
INTERVAL = 5


def setup(runtime: Runtime) -> None:
    runtime.services["send_due_replies"] = partial(send_due_replies, runtime)
    runtime.services["held_attachment_ids"] = held_attachment_ids


async def on_startup(runtime: Runtime) -> None:
    """Every set-up hook has run: the scheduler, when the process has one, is registered."""
    scheduler = runtime.services.get("scheduler")
    if scheduler is not None:
        scheduler.register(JOB, INTERVAL, partial(send_due_replies, runtime))
