"""Running rules: the reaction to ticket events, and applying plans through the executor.

All the field changes one evaluation pass makes to a ticket are one update of it (one version,
one `ticket.updated` listing them, each audited under its rule); notes, canned replies and
notices are one call each, in a savepoint, so a failing one leaves no trace. The rules of a
trigger come from the process's `RuleCache`, checked against the shared cache on every event.

Loop guard: an event raised by automation actions carries `depth` and `chain` (the rules
whose actions led to it, see `enque.core.events.caused_by`). Rules in the chain are not
evaluated again, so each rule runs at most once per originating change, and nothing runs
beyond `MAX_DEPTH` steps.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.automations import automessages, engine, roundrobin
from enque.automations.executor import (
    FIELD_OPERATIONS,
    ActionContext,
    ActionExecutor,
    FactsLoader,
)
from enque.automations.models import Automation
from enque.automations.rulecache import rule_cache
from enque.automations.schemas import SLA_TRIGGERS
from enque.core.db import now
from enque.core.errors import ApiError
from enque.core.events import Event, caused_by
from enque.core.runtime import Runtime, runtime_of

log = logging.getLogger(__name__)

MAX_DEPTH = 5
COMMENT_TRIGGERS = {"customer": "customer.replied", "reply": "agent.replied"}
NO_MEMBER = "skipped: the team has no active member"

Planned = tuple[engine.TicketFacts, engine.Plan]
# ticket id → operation index in its plan → result
Results = dict[str, dict[int, str]]


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


def _failure(op: engine.Operation, ticket_id: str, exc: Exception) -> str:
    log.warning(
        "automation %s: %s on ticket %s failed",
        op.rule_id,
        op.type,
        ticket_id,
        exc_info=not isinstance(exc, ApiError),
    )
    return f"failed: {exc.message if isinstance(exc, ApiError) else 'error'}"


async def _round_robin(
    session: AsyncSession, workspace_id: str, plans: Sequence[Planned]
) -> dict[tuple[str, int], str | None]:
    """The member each round-robin operation assigns: one step per team for all the tickets,
    handed out in ticket order (None when the team has nobody active)."""
    asked: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for facts, plan in plans:
        for index, op in enumerate(plan.operations):
            if op.type == "assign_round_robin":
                asked[op.value].append((facts.id, index))
    picks: dict[tuple[str, int], str | None] = {}
    for team_id, places in asked.items():
        agents = await roundrobin.next_assignees(
            session, workspace_id=workspace_id, team_id=team_id, count=len(places)
        )
        for n, place in enumerate(places):
            picks[place] = agents[n] if agents else None
    return picks


def _field_changes(
    plans: Sequence[Planned], picks: Mapping[tuple[str, int], str | None], results: Results
) -> dict[str, list[tuple[int, engine.Operation]]]:
    """Per ticket, its field operations (round robin resolved), grouped by rule in run order."""
    changes: dict[str, list[tuple[int, engine.Operation]]] = {}
    for facts, plan in plans:
        order = {rule.id: n for n, rule in enumerate(plan.fired)}
        wanted = []
        for index, op in enumerate(plan.operations):
            if op.type == "assign_round_robin":
                agent = picks[(facts.id, index)]
                if agent is None:
                    results[facts.id][index] = NO_MEMBER
                    continue
                op = engine.Operation("set_assignee", agent, op.rule_id)
            if op.type in FIELD_OPERATIONS:
                wanted.append((index, op))
        if wanted:
            changes[facts.id] = sorted(wanted, key=lambda item: order[item[1].rule_id])
    return changes


async def _change_fields(
    session: AsyncSession,
    executor: ActionExecutor,
    workspace_id: str,
    changes: Mapping[str, Sequence[tuple[int, engine.Operation]]],
    results: Results,
) -> None:
    """One update per ticket. Should the executor break (not merely refuse a change), the
    tickets are tried one by one, so that one broken ticket holds back no other."""
    if not changes:
        return
    try:
        async with isolated(session):
            refused = await executor.change_tickets(
                session, workspace_id, {t: [op for _, op in ops] for t, ops in changes.items()}
            )
    except Exception as exc:
        if len(changes) > 1:
            for ticket_id, ops in changes.items():
                await _change_fields(session, executor, workspace_id, {ticket_id: ops}, results)
            return
        [(ticket_id, ops)] = changes.items()
        for index, op in ops:
            results[ticket_id][index] = _failure(op, ticket_id, exc)
        return
    for ticket_id, ops in changes.items():
        for (index, _), reason in zip(ops, refused[ticket_id], strict=True):
            results[ticket_id][index] = "applied" if reason is None else f"failed: {reason}"


async def _effect(
    session: AsyncSession,
    executor: ActionExecutor,
    facts: engine.TicketFacts,
    op: engine.Operation,
) -> str:
    """A note, a canned reply or a notice: one call in its own savepoint."""
    ctx = ActionContext(session, facts.workspace_id, facts.id, Actor("automation", op.rule_id))
    try:
        async with isolated(session):
            if op.type == "send_canned_reply":
                reason = await automessages.refusal(runtime_of(session).cache, facts)
                if reason is not None:
                    return f"skipped: {reason}"
            await getattr(executor, op.type)(ctx, op.value)
    except Exception as exc:
        return _failure(op, facts.id, exc)
    return "applied"


async def apply_plans(
    session: AsyncSession,
    *,
    workspace_id: str,
    plans: Sequence[Planned],
    depth: int,
    chain: Sequence[str],
) -> dict[str, list[Outcome]]:
    """Apply the plans (of tickets of one workspace) in the session's unit of work and record
    each fired rule's run. All field changes a plan makes are one update of its ticket."""
    executor: ActionExecutor = runtime_of(session).services["automation_executor"]
    results: Results = {facts.id: {} for facts, _ in plans}
    with caused_by(depth, chain):
        picks = await _round_robin(session, workspace_id, plans)
        changes = _field_changes(plans, picks, results)
        await _change_fields(session, executor, workspace_id, changes, results)
        for facts, plan in plans:
            for index, op in enumerate(plan.operations):
                if op.type in engine.EFFECT_ACTIONS:
                    results[facts.id][index] = await _effect(session, executor, facts, op)
    outcomes = {}
    for facts, plan in plans:
        done = results[facts.id]
        outcomes[facts.id] = [
            Outcome(op, _said(op, done[index], picks.get((facts.id, index))))
            for index, op in enumerate(plan.operations)
        ]
    await _record_runs(session, workspace_id, plans, outcomes)
    return outcomes


def _said(op: engine.Operation, result: str, picked: str | None) -> str:
    """A round robin that applied says whom it assigned."""
    if op.type == "assign_round_robin" and result == "applied":
        return f"applied: assigned {picked}"
    return result


async def _record_runs(
    session: AsyncSession,
    workspace_id: str,
    plans: Sequence[Planned],
    outcomes: Mapping[str, Sequence[Outcome]],
) -> None:
    """An `automation.ran` audit row per fired rule and ticket; run counts in one statement
    per distinct increment."""
    moment = now()
    runs: Counter[str] = Counter()
    for facts, plan in plans:
        for rule in plan.fired:
            runs[rule.id] += 1
            done = [
                {"type": o.operation.type, "value": o.operation.value, "result": o.result}
                for o in outcomes[facts.id]
                if o.operation.rule_id == rule.id
            ]
            record(
                session,
                workspace_id=workspace_id,
                actor=Actor("automation", rule.id),
                verb="automation.ran",
                subject_type="ticket",
                subject_id=facts.id,
                after={"automation": rule.name, "trigger": rule.trigger, "actions": done},
            )
    by_increment: dict[int, list[str]] = defaultdict(list)
    for rule_id, count in runs.items():
        by_increment[count].append(rule_id)
    for count, rule_ids in by_increment.items():
        await session.execute(
            update(Automation)
            .where(Automation.workspace_id == workspace_id, Automation.id.in_(rule_ids))
            .values(run_count=Automation.run_count + count, last_run_at=moment)
        )


async def _plan(
    session: AsyncSession,
    load: FactsLoader,
    event: Event,
    ticket_id: str,
    rules: Sequence[engine.Rule],
) -> Planned | None:
    custom = engine.names_custom_fields(rules)
    facts = (await load(session, event.workspace_id, [ticket_id], custom=custom)).get(ticket_id)
    if facts is None:
        return None
    if event.type in SLA_TRIGGERS:  # the target warned of or missed (the `sla_target` condition)
        facts = replace(facts, sla_target=event.payload.get("target"))
    result = engine.plan(rules, facts, now=now(), skip=set(event.chain))
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
    cache = rule_cache(runtime)
    kept = await cache.kept(runtime, workspace_id=event.workspace_id, trigger=trigger)
    if kept is not None and all(rule.id in event.chain for rule in kept):
        return  # no rule to run, known without a session (most events of most workspaces)
    async with runtime.db.session(write=False) as session:
        rules = (
            kept
            if kept is not None
            else await cache.rules(
                runtime, session, workspace_id=event.workspace_id, trigger=trigger
            )
        )
        if all(rule.id in event.chain for rule in rules):
            return
        # SQLite has one writer: decide on a read session, take the lock only when a rule fires
        if runtime.db.is_sqlite and await _plan(session, load, event, ticket_id, rules) is None:
            return
    async with runtime.db.transaction() as session:
        planned = await _plan(session, load, event, ticket_id, rules)
        if planned is None:
            return
        chain = [*event.chain, *(rule.id for rule in planned[1].fired)]
        await apply_plans(
            session,
            workspace_id=event.workspace_id,
            plans=[planned],
            depth=event.depth + 1,
            chain=chain,
        )
