"""Time-based rules (`time.elapsed`): "With User for 72 h → Closed", "Unread for 2 h → High".

A scheduled job. Per rule, one indexed query selects the due tickets: the anchor time is old
enough, every condition SQL can decide with the engine's exact meaning holds (status,
priority, ids, hours since …), and the ledger (`automation_runs`) has not closed the window.
Only those candidates are loaded and evaluated in full, `batch` at a time: one transaction per
batch loads their facts in one query, claims their windows in one statement and changes the
tickets together (one update per ticket). A tick goes on until no due ticket is left.

The ledger makes firing idempotent across workers: a rule fires once per ticket per value of
its anchor time (changes the rule itself makes do not open a new window), and a ticket whose
text conditions failed is not evaluated again until it changes (or, for conditions on their
custom fields, its customer or company changes).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    String,
    and_,
    case,
    column,
    exists,
    func,
    not_,
    or_,
    select,
    table,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from enque.automations import custom, engine
from enque.automations.executor import FactsLoader
from enque.automations.models import Automation, AutomationRun
from enque.automations.runner import apply_plans, installed
from enque.core.db import insert_on_conflict, new_id, now
from enque.core.runtime import Runtime
from enque.workspaces.models import Workspace

log = logging.getLogger(__name__)

# The columns of the tickets table (data-model.md) that the candidate query reads.
tickets = table(
    "tickets",
    column("id", String),
    column("workspace_id", String),
    column("status", String),
    column("priority", String),
    column("assignee_id", String),
    column("team_id", String),
    column("category_id", String),
    column("mailbox_id", String),
    column("company_id", String),
    column("user_id", String),
    column("created_at", BigInteger),
    column("updated_at", BigInteger),
    column("last_customer_reply_at", BigInteger),
    column("last_agent_reply_at", BigInteger),
    column("deleted_at", BigInteger),
    column("merged_into_ticket_id", String),
)
# custom field values (one row per field and entity; `value_text` holds a date's ISO form and
# a checkbox's "true"/"false", `value_number` a number) and the definitions they belong to
field_values = table(
    "custom_field_values",
    column("workspace_id", String),
    column("field_id", String),
    column("entity_id", String),
    column("value_text", String),
    column("value_number"),
)
fields = table(
    "custom_fields",
    column("id", String),
    column("workspace_id", String),
    column("entity", String),
    column("key", String),
)
# the tables whose `updated_at` a custom field change moves (customers and companies)
owners = {
    entity: table(name, column("id", String), column("updated_at", BigInteger))
    for entity, name in (("user", "users"), ("company", "companies"))
}
OWNER_IDS = {"ticket": tickets.c.id, "user": tickets.c.user_id, "company": tickets.c.company_id}
ANCHORS = {
    "created": tickets.c.created_at,
    "updated": tickets.c.updated_at,
    "customer_reply": tickets.c.last_customer_reply_at,
    "agent_reply": tickets.c.last_agent_reply_at,
}
HOURS = {
    "hours_since_created": tickets.c.created_at,
    "hours_since_updated": tickets.c.updated_at,
    "hours_since_customer_reply": tickets.c.last_customer_reply_at,
}
IDS = {
    "mailbox": tickets.c.mailbox_id,
    "assignee": tickets.c.assignee_id,
    "team": tickets.c.team_id,
    "category": tickets.c.category_id,
    "company": tickets.c.company_id,
}
priority_rank = case(engine.PRIORITY_RANK, value=tickets.c.priority, else_=-1)


def custom_sql_condition(condition: engine.Condition, now: int) -> ColumnElement[bool] | None:
    """A custom field condition in SQL, for numbers, dates, checkboxes and emptiness; None for
    string comparisons (case folding) and options, which only the engine decides."""
    entity, key = custom.entity_and_key(condition.field)
    op, value = condition.operator, condition.value
    rows = (
        select(field_values.c.entity_id)
        .join(fields, fields.c.id == field_values.c.field_id)
        .where(
            field_values.c.workspace_id == tickets.c.workspace_id,
            field_values.c.entity_id == OWNER_IDS[entity],
            fields.c.workspace_id == tickets.c.workspace_id,
            fields.c.entity == entity,
            fields.c.key == key,
        )
    )
    number, text = field_values.c.value_number, field_values.c.value_text
    if op in ("is_empty", "is_not_empty"):
        return not_(exists(rows)) if op == "is_empty" else exists(rows)
    if op in ("is_true", "is_false"):
        found = exists(rows.where(text == "true"))
        return found if op == "is_true" else not_(found)
    if op in ("gt", "lt", "gte", "lte"):
        compare = {"gt": number > value, "lt": number < value, "gte": number >= value}
        return exists(rows.where(compare.get(op, number <= value)))
    if op in ("is", "is_not") and isinstance(value, int | float):
        found = exists(rows.where(number == value))
        return found if op == "is" else not_(found)
    if op in ("before", "after"):
        return exists(rows.where(text < value if op == "before" else text > value))
    if op in ("within_next", "within_last"):
        low, high = custom.date_window(op, value, now)
        return exists(rows.where(text >= low, text <= high))
    return None


def sql_condition(condition: engine.Condition, now: int) -> ColumnElement[bool] | None:
    """The condition in SQL, with the engine's meaning; None when only the engine can decide
    (text comparisons, whose case folding SQL engines do not share, and tags)."""
    field, op, value = condition.field, condition.operator, condition.value
    if custom.is_custom(field):
        return custom_sql_condition(condition, now)
    if field in HOURS:
        col = HOURS[field]
        bound = now - value * 3600
        return and_(col.is_not(None), col < bound if op == "gt" else col > bound)
    if field in IDS:
        col = IDS[field]
        if value is None:
            return col.is_(None) if op == "is" else col.is_not(None)
        return col == value if op == "is" else or_(col.is_(None), col != value)
    if field == "priority" and op in ("gt", "lt"):
        rank = engine.PRIORITY_RANK[value]
        return priority_rank > rank if op == "gt" else priority_rank < rank
    if field in ("status", "priority"):
        col = tickets.c[field]
        return col == value if op == "is" else col != value
    return None


def candidate_query(
    rule: engine.Rule, *, workspace_id: str, now: int, limit: int
) -> Select[tuple[str, int]]:
    """Ids and anchor times of the tickets the rule may fire on now, oldest first."""
    anchor = ANCHORS[(rule.trigger_config or {})["field"]]
    translated = [sql_condition(c, now) for c in rule.conditions]
    exact = [t for t in translated if t is not None]
    opaque = len(exact) < len(translated)
    runs = AutomationRun.__table__.alias("runs")
    mine = and_(runs.c.automation_id == rule.id, runs.c.ticket_id == tickets.c.id)
    window_closed = exists().where(
        mine, runs.c.matched.is_(True), or_(runs.c.anchor_at == anchor, runs.c.ran_at >= anchor)
    )
    # the text conditions failed on this version of the ticket (and of its customer and
    # company, when they name their custom fields: a change of those moves their `updated_at`)
    text_failed = exists().where(
        mine,
        runs.c.matched.is_(False),
        runs.c.ran_at >= tickets.c.updated_at,
        *(runs.c.ran_at >= _changed_at(entity) for entity in _opaque_owners(rule, translated)),
    )
    parts = [*exact, not_(text_failed)] if opaque else exact
    if rule.match == "any" and parts:
        conditions = or_(*parts)
    else:  # all of them (none for `any` without conditions: it always matches)
        conditions = and_(true(), *parts) if rule.match == "all" else true()
    return (
        select(tickets.c.id, anchor)
        .where(
            tickets.c.workspace_id == workspace_id,
            tickets.c.deleted_at.is_(None),
            tickets.c.merged_into_ticket_id.is_(None),
            anchor.is_not(None),
            anchor <= now - engine.elapsed_seconds(rule),
            conditions,
            not_(window_closed),
        )
        .order_by(anchor, tickets.c.id)
        .limit(limit)
    )


def _opaque_owners(rule: engine.Rule, translated: Sequence[ColumnElement[bool] | None]) -> set[str]:
    """The customer and company, when a condition only the engine decides names their fields."""
    named = {
        custom.entity_and_key(c.field)[0]
        for c, sql in zip(rule.conditions, translated, strict=True)
        if sql is None and custom.is_custom(c.field)
    }
    return named & set(owners)


def _changed_at(entity: str) -> ColumnElement[int]:
    owner = owners[entity]
    changed = (
        select(owner.c.updated_at).where(owner.c.id == OWNER_IDS[entity]).correlate_except(owner)
    )
    return func.coalesce(changed.scalar_subquery(), 0)


def _has_text_conditions(rule: engine.Rule) -> bool:
    return any(sql_condition(c, 0) is None for c in rule.conditions)


@dataclass(frozen=True)
class Window:
    """One rule on one ticket for one value of its anchor time."""

    workspace_id: str
    rule_id: str
    ticket_id: str
    anchor: int

    def row(self, *, matched: bool, ran_at: int) -> dict[str, object]:
        return {
            "id": new_id(),
            "workspace_id": self.workspace_id,
            "automation_id": self.rule_id,
            "ticket_id": self.ticket_id,
            "anchor_at": self.anchor,
            "matched": matched,
            "ran_at": ran_at,
        }


WINDOW_KEY = ["automation_id", "ticket_id", "anchor_at"]


def _upsert_windows(session: AsyncSession, matched: bool) -> Any:
    """An `INSERT` of ledger rows (executed with many rows: SQLAlchemy sends them in few
    statements) that takes a window only while no matched row holds it."""
    stmt = insert_on_conflict(session, AutomationRun)
    changes: dict[str, Any] = {"ran_at": stmt.excluded.ran_at}
    if matched:
        changes["matched"] = True
    return stmt.on_conflict_do_update(
        index_elements=WINDOW_KEY, set_=changes, where=AutomationRun.matched.is_(False)
    )


async def _claim(session: AsyncSession, windows: Sequence[Window], moment: int) -> dict[str, str]:
    """Take the windows; returns ticket id → ledger row of those taken here (a window another
    run already took is not among them)."""
    if not windows:
        return {}
    stmt = _upsert_windows(session, True).returning(AutomationRun.ticket_id, AutomationRun.id)
    rows = [w.row(matched=True, ran_at=moment) for w in windows]
    return {ticket_id: run_id for ticket_id, run_id in (await session.execute(stmt, rows)).all()}


async def _remember_unmatched(
    session: AsyncSession, windows: Sequence[Window], moment: int
) -> None:
    if windows:
        rows = [w.row(matched=False, ran_at=moment) for w in windows]
        await session.execute(_upsert_windows(session, False), rows)


async def _run_batch(
    runtime: Runtime,
    load: FactsLoader,
    workspace_id: str,
    rule: engine.Rule,
    candidates: Sequence[str],
    moment: int,
) -> tuple[int, int]:
    """One transaction for a batch of candidates: load, evaluate, claim, apply; returns
    (fired, unmatched)."""
    async with runtime.db.transaction() as session:
        facts = await load(
            session, workspace_id, candidates, custom=engine.names_custom_fields([rule])
        )
        due = [
            facts[i] for i in candidates if i in facts and engine.time_due(rule, facts[i], moment)
        ]
        plans = [(f, engine.plan([rule], f, now=moment)) for f in due]
        windows = {
            f.id: Window(workspace_id, rule.id, f.id, engine.time_anchor(rule, f) or 0) for f in due
        }
        unmatched = [windows[f.id] for f, p in plans if not p.fired]
        if _has_text_conditions(rule):
            await _remember_unmatched(session, unmatched, moment)
        matched = [(f, p) for f, p in plans if p.fired]
        claimed = await _claim(session, [windows[f.id] for f, _ in matched], moment)
        mine = [(f, p) for f, p in matched if f.id in claimed]
        if mine:
            await apply_plans(
                session, workspace_id=workspace_id, plans=mine, depth=1, chain=[rule.id]
            )
            # after the actions, so the updates they made fall inside the closed windows
            await session.execute(
                update(AutomationRun)
                .where(AutomationRun.id.in_(list(claimed.values())))
                .values(ran_at=max(moment, now()))
            )
    return len(mine), len(unmatched)


@dataclass
class TimeRulesReport:
    rules: int = 0
    candidates: int = 0
    fired: int = 0
    unmatched: int = 0


async def due_rules(runtime: Runtime) -> list[tuple[str, engine.Rule]]:
    """Active time rules of live workspaces, in run order."""
    stmt = (
        select(Automation)
        .join(Workspace, Workspace.id == Automation.workspace_id)
        .where(
            Automation.trigger == "time.elapsed",
            Automation.is_active.is_(True),
            Automation.deleted_at.is_(None),
            Workspace.is_active.is_(True),
            Workspace.deleted_at.is_(None),
        )
        .order_by(Automation.workspace_id, Automation.position, Automation.id)
    )
    async with runtime.db.session(write=False) as session:
        rows = (await session.execute(stmt)).scalars().all()
    return [(row.workspace_id, engine.Rule.of(row)) for row in rows]


async def run_time_rules(
    runtime: Runtime, *, at: int | None = None, batch: int = 500
) -> TimeRulesReport:
    """One tick: every due (rule, ticket) pair, `batch` tickets per transaction."""
    report = TimeRulesReport()
    parts = installed(runtime)
    if parts is None:
        return report
    load = parts[0]
    moment = now() if at is None else at
    for workspace_id, rule in await due_rules(runtime):
        report.rules += 1
        query = candidate_query(rule, workspace_id=workspace_id, now=moment, limit=batch)
        seen: set[str] = set()
        while True:
            async with runtime.db.session(write=False) as session:
                candidates = [row[0] for row in (await session.execute(query)).all()]
            fresh = [c for c in candidates if c not in seen]
            if not fresh:  # each batch settles its tickets; none come back in one tick
                break
            seen.update(fresh)
            report.candidates += len(fresh)
            try:
                fired, unmatched = await _run_batch(
                    runtime, load, workspace_id, rule, fresh, moment
                )
            except Exception:
                log.exception("time rule %s on %d tickets failed", rule.id, len(fresh))
                break
            report.fired += fired
            report.unmatched += unmatched
            if len(candidates) < batch:
                break
    return report
