"""The process's scheduler: made at set-up (so other domains can register their jobs), its
loop started with the process when `SCHEDULER_ENABLED` (`enque serve`, `enque worker`)."""

from __future__ import annotations

from enque.core.runtime import Runtime
from enque.core.scheduler import scheduler_of


def setup(runtime: Runtime) -> None:
    scheduler_of(runtime)


async def on_startup(runtime: Runtime) -> None:
    if runtime.settings.scheduler_enabled:
        scheduler_of(runtime).start()


async def on_shutdown(runtime: Runtime) -> None:
    await scheduler_of(runtime).stop()
