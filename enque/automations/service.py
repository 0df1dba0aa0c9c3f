"""Automation rules: create, change, reorder, delete, list; dry-run against a ticket."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.automations import custom, engine
from enque.automations.models import Automation
from enque.automations.refs import unknown_references
from enque.automations.schemas import (
    SLA_TRIGGERS,
    ActionIn,
    ActionResultOut,
    AutomationIn,
    AutomationPatch,
    CheckedRule,
    ConditionIn,
    ConditionResultOut,
    DryRunOut,
    check_rule,
)
from enque.core.api import PageParams
from enque.core.db import new_id, now, unit
from enque.core.errors import ApiError, not_found
from enque.core.pagination import Page, SortKey, keyset_page
from enque.core.runtime import runtime_of

# `runtime.services[FIELD_DEFINITIONS]` (the custom fields domain): (session, workspace id) →
# the workspace's custom fields; without it no rule may name a custom field
FIELD_DEFINITIONS = "custom_field_definitions"
DefinitionsLoader = Callable[[AsyncSession, str], Awaitable[list[custom.FieldDefinition]]]

AUDITED = (
    "name",
    "is_active",
    "trigger",
    "trigger_config",
    "match",
    "conditions",
    "actions",
    "position",
)


def _live(workspace_id: str) -> Select[tuple[Automation]]:
    return select(Automation).where(
        Automation.workspace_id == workspace_id, Automation.deleted_at.is_(None)
    )


def _state(rule: Automation) -> dict[str, Any]:
    return {name: getattr(rule, name) for name in AUDITED}


async def list_automations(
    session: AsyncSession, *, workspace_id: str, page: PageParams, trigger: str | None = None
) -> Page[Automation]:
    stmt = _live(workspace_id)
    if trigger is not None:
        stmt = stmt.where(Automation.trigger == trigger)
    keys = [SortKey(Automation.position), SortKey(Automation.id)]
    return await keyset_page(session, stmt, keys, page, lambda r: (r.position, r.id))


async def get_automation(
    session: AsyncSession, *, workspace_id: str, automation_id: str
) -> Automation:
    stmt = _live(workspace_id).where(Automation.id == automation_id)
    rule = (await session.execute(stmt)).scalar_one_or_none()
    if rule is None:
        raise not_found("Automation")
    return rule


async def active_rules(
    session: AsyncSession, *, workspace_id: str, trigger: str
) -> list[Automation]:
    """The workspace's active rules of `trigger`, in the order they run."""
    stmt = (
        _live(workspace_id)
        .where(Automation.trigger == trigger, Automation.is_active.is_(True))
        .order_by(Automation.position, Automation.id)
    )
    return list((await session.execute(stmt)).scalars())


async def _checked(
    session: AsyncSession,
    workspace_id: str,
    *,
    trigger: str,
    trigger_config: dict[str, Any] | None,
    conditions: list[ConditionIn],
    actions: list[ActionIn],
    check_references: bool,
) -> CheckedRule:
    """Checked against the workspace: custom fields always (a rule whose field was deleted
    cannot be saved or switched on again as it is), the ids it names when they changed."""
    fields = await custom_fields(session, workspace_id, [c.field for c in conditions])
    checked = check_rule(
        trigger=trigger,
        trigger_config=trigger_config,
        conditions=conditions,
        actions=actions,
        fields=fields,
    )
    if check_references:
        problems = await unknown_references(session, workspace_id, checked.references)
        if problems:
            raise ApiError("VALIDATION_ERROR", "Validation failed", problems)
    return checked


async def custom_fields(
    session: AsyncSession, workspace_id: str, names: Sequence[str]
) -> Mapping[str, custom.FieldDefinition]:
    """The workspace's custom fields by condition name, when `names` include one (else none)."""
    if not any(custom.is_custom(n) for n in names):
        return {}
    load: DefinitionsLoader | None = runtime_of(session).services.get(FIELD_DEFINITIONS)
    return custom.definitions_by_field(await load(session, workspace_id)) if load else {}


async def deactivate_rules_naming(
    session: AsyncSession, *, workspace_id: str, actor: Actor, field: str
) -> list[str]:
    """After a custom field was deleted or lost options, in the caller's transaction: every
    active rule with a condition on `field` (`ticket.custom.plan`) that no longer passes the
    check is switched off, and the activity log says which conditions failed and why. Answers
    the ids of the rules switched off."""
    stmt = _live(workspace_id).where(Automation.is_active.is_(True))
    naming = [
        rule
        for rule in (await session.execute(stmt)).scalars()
        if any(c["field"] == field for c in rule.conditions)
    ]
    if not naming:
        return []
    fields = await custom_fields(session, workspace_id, [field])
    switched_off = []
    for rule in naming:
        try:
            check_rule(
                trigger=rule.trigger,
                trigger_config=rule.trigger_config,
                conditions=[ConditionIn.model_validate(c) for c in rule.conditions],
                actions=[ActionIn.model_validate(a) for a in rule.actions],
                fields=fields,
            )
            continue
        except ApiError as exc:
            problems = exc.details
        rule.is_active = False
        rule.updated_at = now()
        switched_off.append(rule.id)
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="automation.deactivated",
            subject_type="automation",
            subject_id=rule.id,
            before={"is_active": True},
            after={"is_active": False, "field": field, "problems": problems},
        )
    return switched_off


async def _place(
    session: AsyncSession, workspace_id: str, rule: Automation, position: int | None
) -> None:
    """Put `rule` at `position` (end when None) and renumber the workspace's rules 0…n-1."""
    stmt = (
        _live(workspace_id)
        .where(Automation.id != rule.id)
        .order_by(Automation.position, Automation.id)
        .with_for_update()
    )
    others = list((await session.execute(stmt)).scalars())
    index = len(others) if position is None else min(position, len(others))
    others.insert(index, rule)
    for i, item in enumerate(others):
        if item.position != i:
            item.position = i


async def create_automation(
    session: AsyncSession, *, workspace_id: str, actor: Actor, data: AutomationIn
) -> Automation:
    config = data.trigger_config.model_dump() if data.trigger_config else None
    async with unit(session):
        checked = await _checked(
            session,
            workspace_id,
            trigger=data.trigger,
            trigger_config=config,
            conditions=data.conditions,
            actions=data.actions,
            check_references=True,
        )
        rule = Automation(
            id=new_id(),
            workspace_id=workspace_id,
            name=data.name,
            is_active=data.is_active,
            trigger=data.trigger,
            trigger_config=config,
            match=data.match,
            conditions=checked.conditions,
            actions=checked.actions,
            created_by_id=actor.id if actor.type == "agent" else None,
        )
        session.add(rule)
        await _place(session, workspace_id, rule, data.position)
        await session.flush()
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="automation.created",
            subject_type="automation",
            subject_id=rule.id,
            after=_state(rule),
        )
    return rule


async def update_automation(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    automation_id: str,
    changes: AutomationPatch,
) -> Automation:
    given = changes.model_fields_set
    async with unit(session):
        rule = await get_automation(session, workspace_id=workspace_id, automation_id=automation_id)
        before = _state(rule)
        trigger = changes.trigger or rule.trigger
        if "trigger_config" in given:
            config = changes.trigger_config.model_dump() if changes.trigger_config else None
        else:  # kept while the trigger stays; a new trigger brings its own
            config = rule.trigger_config if trigger == rule.trigger else None
        conditions = changes.conditions
        if conditions is None:
            conditions = [ConditionIn.model_validate(c) for c in rule.conditions]
        actions = changes.actions
        if actions is None:
            actions = [ActionIn.model_validate(a) for a in rule.actions]
        checked = await _checked(
            session,
            workspace_id,
            trigger=trigger,
            trigger_config=config,
            conditions=conditions,
            actions=actions,
            check_references=changes.conditions is not None or changes.actions is not None,
        )
        rule.trigger, rule.trigger_config = trigger, config
        rule.conditions, rule.actions = checked.conditions, checked.actions
        rule.name = changes.name or rule.name
        rule.match = changes.match or rule.match
        if changes.is_active is not None:
            rule.is_active = changes.is_active
        if changes.position is not None:
            await _place(session, workspace_id, rule, changes.position)
        after = _state(rule)
        diff = [k for k in AUDITED if before[k] != after[k]]
        if diff:
            rule.updated_at = now()
            record(
                session,
                workspace_id=workspace_id,
                actor=actor,
                verb="automation.updated",
                subject_type="automation",
                subject_id=rule.id,
                before={k: before[k] for k in diff},
                after={k: after[k] for k in diff},
            )
    return rule


async def delete_automation(
    session: AsyncSession, *, workspace_id: str, actor: Actor, automation_id: str
) -> None:
    """Soft delete: the rule stops running and leaves the list; its history stays."""
    async with unit(session):
        rule = await get_automation(session, workspace_id=workspace_id, automation_id=automation_id)
        rule.deleted_at = now()
        rule.is_active = False
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="automation.deleted",
            subject_type="automation",
            subject_id=rule.id,
            before=_state(rule),
        )


# ---------------------------------------------------------------- dry run


def describe(action: engine.Action, before: engine.TicketFacts, after: engine.TicketFacts) -> str:
    """What an action would do to the ticket, in words."""
    if action.type == "stop":
        return "stop: later rules do not run"
    if action.type in engine.FIELD_ACTIONS:
        attribute = engine.FIELD_ACTIONS[action.type]
        old, new = getattr(before, attribute), getattr(after, attribute)
        label = attribute.removesuffix("_id")
        return (
            f"no change ({label} is already {old})" if old == new else (f"{label}: {old} → {new}")
        )
    if action.type == "assign_round_robin":
        return f"assign to the next active member of team {action.value}"
    if action.type in ("add_tag", "remove_tag"):
        verb, state = ("add", "present") if action.type == "add_tag" else ("remove", "absent")
        if before.tags == after.tags:
            return f"no change (tag {action.value!r} already {state})"
        return f"{verb} tag {action.value!r}"
    if action.type == "add_note":
        return "add an internal note"
    if action.type == "send_canned_reply":
        return f"send canned reply {action.value} to the customer (automatic-message limits apply)"
    return f"notify {len(action.value)} agent(s)"


def assumed_sla_event(
    trigger: str, facts: engine.TicketFacts, target: str | None
) -> tuple[engine.TicketFacts, bool]:
    """For an `sla.*` rule: the facts with the target the event would name (`target`, or the
    first the ticket was warned of / missed), and whether that event happened to it."""
    happened = facts.sla_breached if trigger == "sla.breached" else facts.sla_warned
    chosen = target or (happened[0] if happened else None)
    return replace(facts, sla_target=chosen), chosen in happened


async def dry_run(
    session: AsyncSession,
    *,
    workspace_id: str,
    automation_id: str,
    ticket_id: str,
    sla_target: str | None = None,
) -> DryRunOut:
    """Which conditions match the ticket and what the actions would do; changes nothing.

    Whether the trigger is satisfied: always for event triggers, once the hours have passed
    for `time.elapsed`, and for `sla.*` once the ticket was warned of / missed the target."""
    row = await get_automation(session, workspace_id=workspace_id, automation_id=automation_id)
    load = runtime_of(session).services.get("ticket_facts")
    facts = (await load(session, workspace_id, [ticket_id])).get(ticket_id) if load else None
    if facts is None:
        raise not_found("Ticket")
    rule = engine.Rule.of(row)
    moment = now()
    satisfied = True
    if rule.trigger == "time.elapsed":
        satisfied = engine.time_due(rule, facts, moment)
    elif rule.trigger in SLA_TRIGGERS:
        facts, satisfied = assumed_sla_event(rule.trigger, facts, sla_target)
    result = engine.evaluate(rule, facts, moment)
    actions = []
    current = facts
    for action in rule.actions:
        after = engine.simulate(current, action)
        actions.append(
            ActionResultOut(
                type=action.type, value=action.value, effect=describe(action, current, after)
            )
        )
        current = after
    return DryRunOut(
        automation_id=row.id,
        ticket_id=facts.id,
        trigger=rule.trigger,
        trigger_satisfied=satisfied,
        match=rule.match,
        matched=result.matched and satisfied,
        conditions=[
            ConditionResultOut(
                field=c.condition.field,
                operator=c.condition.operator,
                value=c.condition.value,
                actual=_shown(c.actual),
                matched=c.matched,
            )
            for c in result.conditions
        ],
        actions=actions,
        stops_further_rules=rule.stops,
        sla_target=facts.sla_target,
    )


def _shown(value: Any) -> Any:
    """Long texts (bodies) cut for the explanation; hours rounded."""
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + "…"
    if isinstance(value, float):
        return round(value, 2)
    return value
