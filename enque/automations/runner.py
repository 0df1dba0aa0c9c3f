"""Running rules: the reaction to ticket events, and applying a plan through the executor.

Loop guard: an event raised by automation actions carries `depth` and `chain` (the rules
whose actions led to it, see `enque.core.events.caused_by`). Rules in the chain are not
evaluated again, so each rule runs at most once per originating change, and nothing runs
beyond `MAX_DEPTH` steps.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.automations import automessages, engine, roundrobin
from enque.automations.executor import ActionContext, ActionExecutor
from enque.automations.models import Automation
from enque.automations.schemas import SLA_TRIGGERS
from enque.automations.service import active_rules
from enque.core.db import now
from enque.core.errors import ApiError
from enque.core.events import Event, caused_by
from enque.core.runtime import Runtime, runtime_of

log = logging.getLogger(__name__)

MAX_DEPTH = 5
COMMENT_TRIGGERS = {"customer": "customer.replied", "reply": "agent.replied"}

FactsLoader = Callable[[AsyncSession, str, str], Awaitable[engine.TicketFacts | None]]


@dataclass(frozen=True)
class Outcome:
    operation: engine.Operation
    result: str  # "applied", "skipped: <why>" or "failed: <why>"


def trigger_of(event: Event) -> tuple[str, str] | None:
    """The rule trigger an event fires and the ticket it concerns, if any."""
    payload = event.payload
    if event.type in ("ticket.created", "ticket.updated"):
        ticket_id = payload.get("id") or (payload.get("ticket") or {}).get("id")
        return (event.type, ticket_id) if ticket_id else None
    if event.type == "comment.created":
        trigger = COMMENT_TRIGGERS.get((payload.get("comment") or {}).get("kind", ""))
        ticket_id = payload.get("ticketId")
        return (trigger, ticket_id) if trigger and ticket_id else None
    if event.type in SLA_TRIGGERS:  # raised by the SLA domain (its due check or a change)
        ticket_id = payload.get("ticketId")
        return (event.type, ticket_id) if ticket_id else None
    return None


def installed(runtime: Runtime) -> tuple[FactsLoader, ActionExecutor] | None:
    """The tickets domain's loader and executor, when it is installed."""
    load = runtime.services.get("ticket_facts")
    executor = runtime.services.get("automation_executor")
    return (load, executor) if load is not None and executor is not None else None


@asynccontextmanager
async def isolated(session: AsyncSession) -> AsyncIterator[None]:
    """A savepoint: a failing action rolls back its writes and forgets its events."""
    hooks: list[Any] = session.info.setdefault("after_commit", [])
    mark = len(hooks)
    try:
        async with session.begin_nested():
            yield
    except BaseException:
        del hooks[mark:]
        raise


async def _apply(
    session: AsyncSession,
    executor: ActionExecutor,
    ctx: ActionContext,
    op: engine.Operation,
    facts: engine.TicketFacts,
) -> str:
    kind, value = op.type, op.value
    if kind == "assign_round_robin":
        agent = await roundrobin.next_assignee(
            session, workspace_id=ctx.workspace_id, team_id=value
        )
        if agent is None:
            return "skipped: the team has no active member"
        await executor.set_assignee(ctx, agent)
        return f"applied: assigned {agent}"
    if kind == "send_canned_reply":
        reason = await automessages.refusal(runtime_of(session).cache, facts)
        if reason is not None:
            return f"skipped: {reason}"
    method = getattr(executor, kind)
    await method(ctx, value)
    return "applied"


async def apply_plan(
    session: AsyncSession,
    *,
    facts: engine.TicketFacts,
    plan: engine.Plan,
    depth: int,
    chain: Sequence[str],
) -> list[Outcome]:
    """Apply the plan's operations in the session's unit; record each fired rule's run."""
    executor: ActionExecutor = runtime_of(session).services["automation_executor"]
    outcomes = []
    with caused_by(depth, chain):
        for op in plan.operations:
            actor = Actor("automation", op.rule_id)
            ctx = ActionContext(session, facts.workspace_id, facts.id, actor)
            try:
                async with isolated(session):
                    result = await _apply(session, executor, ctx, op, facts)
            except Exception as exc:
                log.warning(
                    "automation %s: %s on ticket %s failed",
                    op.rule_id,
                    op.type,
                    facts.id,
                    exc_info=not isinstance(exc, ApiError),
                )
                result = f"failed: {exc.message if isinstance(exc, ApiError) else 'error'}"
            outcomes.append(Outcome(op, result))
    await _record_runs(session, facts, plan.fired, outcomes)
    return outcomes


async def _record_runs(
    session: AsyncSession,
    facts: engine.TicketFacts,
    fired: Sequence[engine.Rule],
    outcomes: Sequence[Outcome],
) -> None:
    moment = now()
    for rule in fired:
        done = [
            {"type": o.operation.type, "value": o.operation.value, "result": o.result}
            for o in outcomes
            if o.operation.rule_id == rule.id
        ]
        record(
            session,
            workspace_id=facts.workspace_id,
            actor=Actor("automation", rule.id),
            verb="automation.ran",
            subject_type="ticket",
            subject_id=facts.id,
            after={"automation": rule.name, "trigger": rule.trigger, "actions": done},
        )
    await session.execute(
        update(Automation)
        .where(Automation.id.in_([r.id for r in fired]))
        .values(run_count=Automation.run_count + 1, last_run_at=moment)
    )


async def _prepare(
    session: AsyncSession, load: FactsLoader, event: Event, trigger: str, ticket_id: str
) -> tuple[engine.TicketFacts, engine.Plan] | None:
    rows = await active_rules(session, workspace_id=event.workspace_id, trigger=trigger)
    skip = set(event.chain)
    rules = [engine.Rule.of(r) for r in rows]
    if all(r.id in skip for r in rules):
        return None
    facts = await load(session, event.workspace_id, ticket_id)
    if facts is None:
        return None
    if trigger in SLA_TRIGGERS:  # the target warned of or missed (the `sla_target` condition)
        facts = replace(facts, sla_target=event.payload.get("target"))
    result = engine.plan(rules, facts, now=now(), skip=skip)
    return (facts, result) if result.fired else None


async def react(runtime: Runtime, event: Event) -> None:
    """Run the workspace's rules of the event's trigger on its ticket."""
    found = trigger_of(event)
    parts = installed(runtime)
    if found is None or parts is None:
        return
    if event.depth >= MAX_DEPTH:
        log.warning("automation chain %s stopped at depth %d", event.chain, event.depth)
        return
    trigger, ticket_id = found
    load = parts[0]
    # Decide on a read session; take the write lock only when a rule fires.
    async with runtime.db.session(write=False) as session:
        if await _prepare(session, load, event, trigger, ticket_id) is None:
            return
    async with runtime.db.transaction() as session:
        prepared = await _prepare(session, load, event, trigger, ticket_id)
        if prepared is None:
            return
        facts, result = prepared
        chain = [*event.chain, *(r.id for r in result.fired)]
        await apply_plan(session, facts=facts, plan=result, depth=event.depth + 1, chain=chain)
