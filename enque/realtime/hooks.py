"""The hub of this worker: created with the app, started and stopped with its lifespan."""

from __future__ import annotations

from enque.core.runtime import Runtime
from enque.realtime.hub import Hub

REALTIME = "realtime"


def setup(runtime: Runtime) -> None:
    if REALTIME not in runtime.services:
        runtime.services[REALTIME] = Hub(runtime)


async def on_startup(runtime: Runtime) -> None:
    await runtime.services[REALTIME].start()


async def on_shutdown(runtime: Runtime) -> None:
    await runtime.services[REALTIME].stop()
