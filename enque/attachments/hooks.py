"""Storage for the process, the comments seam, and the orphan sweep job."""

from __future__ import annotations

from functools import partial

from enque.attachments import service
from enque.core.runtime import Runtime
from enque.core.storage import open_storage
from enque.tickets.seams import ATTACHMENTS

ORPHAN_SWEEP_JOB = "attachments.orphan_sweep"
ORPHAN_SWEEP_INTERVAL = 3600


def setup(runtime: Runtime) -> None:
    runtime.services.setdefault("storage", open_storage(runtime.settings.storage_url))
    runtime.services[ATTACHMENTS] = service.AttachmentLinks()


async def on_startup(runtime: Runtime) -> None:
    runtime.register_job(
        ORPHAN_SWEEP_JOB, ORPHAN_SWEEP_INTERVAL, partial(service.sweep_orphans, runtime)
    )
