"""Wire automations into the process: the event reaction and the time-rules job."""

from __future__ import annotations

from functools import partial

from enque.automations.runner import react
from enque.automations.timerules import run_time_rules
from enque.core.events import Event
from enque.core.runtime import Runtime

TIME_RULES_JOB = "automations.time_rules"
TIME_RULES_INTERVAL = 60


def setup(runtime: Runtime) -> None:
    async def reaction(event: Event) -> None:
        await react(runtime, event)

    runtime.reactions.append(reaction)


async def on_startup(runtime: Runtime) -> None:
    """Every set-up hook has run: the scheduler, when the process has one, is registered."""
    scheduler = runtime.services.get("scheduler")
    if scheduler is not None:
        scheduler.register(TIME_RULES_JOB, TIME_RULES_INTERVAL, partial(run_time_rules, runtime))
