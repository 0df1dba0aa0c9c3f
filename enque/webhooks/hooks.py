"""Wire webhooks into the process: the event reaction, the sender and its retry job."""

from __future__ import annotations

from enque.core.events import Event
from enque.core.runtime import Runtime
from enque.webhooks.delivery import Sender
from enque.webhooks.service import enqueue

SENDER = "webhooks"
DELIVER_JOB = "webhooks.deliver"
DELIVER_INTERVAL = 15


def sender_of(runtime: Runtime) -> Sender:
    sender: Sender = runtime.services[SENDER]
    return sender


def setup(runtime: Runtime) -> None:
    runtime.services[SENDER] = Sender(runtime)

    async def reaction(event: Event) -> None:
        ids = await enqueue(runtime, event)
        if ids:
            sender_of(runtime).kick(ids)

    runtime.reactions.append(reaction)


async def on_startup(runtime: Runtime) -> None:
    scheduler = runtime.services.get("scheduler")
    if scheduler is not None:
        scheduler.register(DELIVER_JOB, DELIVER_INTERVAL, sender_of(runtime).run_due)


async def on_shutdown(runtime: Runtime) -> None:
    await sender_of(runtime).close()
