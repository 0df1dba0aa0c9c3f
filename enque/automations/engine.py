"""Rule evaluation: ticket facts + ordered rules → which rules match, why, and what to do.

Pure: no database, no clock (callers pass `now`). Rules run in position order; each rule sees
the effects of the rules before it; `stop` ends the run; rules named in `skip` (the loop
guard's chain) are not evaluated. The plan coalesces the effects, so a field set twice is
changed once, to its final value, and nothing that would not change is applied.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from enque.automations import custom
from enque.automations.schemas import PRIORITIES, compile_pattern

ROUND_ROBIN = "(round robin)"  # the assignee a rule will pick when the plan is applied

# `time.elapsed` field → TicketFacts attribute
TIME_ANCHORS = {
    "created": "created_at",
    "updated": "updated_at",
    "customer_reply": "last_customer_reply_at",
    "agent_reply": "last_agent_reply_at",
}
HOURS_ANCHORS = {
    "hours_since_created": "created_at",
    "hours_since_updated": "updated_at",
    "hours_since_customer_reply": "last_customer_reply_at",
}
ID_ATTRIBUTES = {
    "mailbox": "mailbox_id",
    "assignee": "assignee_id",
    "team": "team_id",
    "category": "category_id",
    "company": "company_id",
}
FIELD_ACTIONS = {
    "set_status": "status",
    "set_priority": "priority",
    "set_assignee": "assignee_id",
    "set_team": "team_id",
    "set_category": "category_id",
}
EFFECT_ACTIONS = ("add_note", "send_canned_reply", "notify_agents")
PRIORITY_RANK = {p: i for i, p in enumerate(PRIORITIES)}


@dataclass(frozen=True)
class TicketFacts:
    """What rules can see of a ticket, loaded once per evaluation."""

    id: str
    workspace_id: str
    subject: str = ""
    body: str = ""  # plain text of the first message
    status: str = "Open"
    priority: str = "Medium"
    customer_email: str | None = None
    mailbox_id: str | None = None
    assignee_id: str | None = None
    team_id: str | None = None
    category_id: str | None = None
    company_id: str | None = None
    tags: tuple[str, ...] = ()
    created_at: int = 0
    updated_at: int = 0
    last_customer_reply_at: int | None = None
    last_agent_reply_at: int | None = None
    # the message behind the event was auto-submitted, bulk, a list or a bounce (email.md)
    sender_is_automated: bool = False
    # SLA: the targets warned of and missed so far, and the one an `sla.*` event is about
    sla_warned: tuple[str, ...] = ()
    sla_breached: tuple[str, ...] = ()
    sla_target: str | None = None
    # custom field values of the ticket, its customer and its company by condition name
    # (`ticket.custom.plan`); a field without a value is absent
    custom: Mapping[str, Any] = field(default_factory=dict)

    @property
    def customer_domain(self) -> str | None:
        if not self.customer_email or "@" not in self.customer_email:
            return None
        return self.customer_email.rpartition("@")[2]


@dataclass(frozen=True)
class Condition:
    field: str
    operator: str
    value: Any


@dataclass(frozen=True)
class Action:
    type: str
    value: Any = None


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    trigger: str
    match: str = "all"
    conditions: tuple[Condition, ...] = ()
    actions: tuple[Action, ...] = ()
    trigger_config: dict[str, Any] | None = None

    @classmethod
    def of(cls, row: Any) -> Rule:
        """From an Automation row (or anything with its attributes)."""
        return cls(
            id=row.id,
            name=row.name,
            trigger=row.trigger,
            match=row.match,
            conditions=tuple(
                Condition(c["field"], c["operator"], c["value"]) for c in row.conditions
            ),
            actions=tuple(Action(a["type"], a.get("value")) for a in row.actions),
            trigger_config=row.trigger_config,
        )

    @property
    def stops(self) -> bool:
        return any(a.type == "stop" for a in self.actions)


@dataclass(frozen=True)
class ConditionResult:
    condition: Condition
    actual: Any
    matched: bool


@dataclass
class RuleResult:
    rule: Rule
    matched: bool
    conditions: list[ConditionResult]
    skipped: bool = False  # by the loop guard


@dataclass(frozen=True)
class Operation:
    """One change to apply, attributed to the rule that asked for it last."""

    type: str
    value: Any
    rule_id: str


@dataclass
class Plan:
    results: list[RuleResult] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)
    final: TicketFacts | None = None

    @property
    def fired(self) -> list[Rule]:
        return [r.rule for r in self.results if r.matched]


# ---------------------------------------------------------------- conditions


def actual_value(facts: TicketFacts, name: str, now: int) -> Any:
    """The ticket's value for a condition field (hours are floats, None when unknown)."""
    if name in HOURS_ANCHORS:
        anchor = getattr(facts, HOURS_ANCHORS[name])
        return None if anchor is None else (now - anchor) / 3600
    if name in ID_ATTRIBUTES:
        return getattr(facts, ID_ATTRIBUTES[name])
    if name == "tag":
        return list(facts.tags)
    if custom.is_custom(name):
        return facts.custom.get(name)
    return getattr(facts, name)


def _text_holds(operator: str, actual: str, expected: str) -> bool:
    """Positive text operators (negatives are their inverse), case-insensitive."""
    if operator == "matches":
        return compile_pattern(expected).search(actual) is not None
    a, e = actual.casefold(), expected.casefold()
    if operator == "is":
        return a == e
    if operator == "contains":
        return e in a
    return a.startswith(e)  # starts_with


NEGATIVE = {"is_not": "is", "not_contains": "contains"}


def holds(condition: Condition, actual: Any, now: int = 0) -> bool:
    op, expected = condition.operator, condition.value
    if custom.is_custom(condition.field):
        outcome = custom.holds(op, expected, actual, now)
        if outcome is not None:
            return outcome
        if not isinstance(actual, str | None):  # a number or list under a text operator
            actual = str(actual)
    if op in ("gt", "lt"):
        if actual is None:
            return False
        if condition.field == "priority":
            actual, expected = PRIORITY_RANK.get(actual, -1), PRIORITY_RANK[expected]
        return bool(actual > expected) if op == "gt" else bool(actual < expected)
    positive = NEGATIVE.get(op, op)
    if condition.field == "tag":
        found = any(_text_holds(positive, tag, expected) for tag in actual)
    elif condition.field in ID_ATTRIBUTES or condition.field in (
        "status",
        "priority",
        "sla_target",
    ):
        found = actual == expected
    else:
        found = _text_holds(positive, actual or "", expected)
    return not found if op in NEGATIVE else found


def evaluate(rule: Rule, facts: TicketFacts, now: int) -> RuleResult:
    """Every condition's outcome (none are short-circuited: dry-run explains them all)."""
    results = []
    for condition in rule.conditions:
        actual = actual_value(facts, condition.field, now)
        results.append(ConditionResult(condition, actual, holds(condition, actual, now)))
    outcomes = [r.matched for r in results]
    matched = all(outcomes) if rule.match == "all" else (not outcomes or any(outcomes))
    return RuleResult(rule, matched, results)


def names_custom_fields(rules: Iterable[Rule]) -> bool:
    """Whether a condition of `rules` names a custom field (the facts must carry them)."""
    return any(custom.is_custom(c.field) for rule in rules for c in rule.conditions)


def time_anchor(rule: Rule, facts: TicketFacts) -> int | None:
    """The ticket time a `time.elapsed` rule counts from."""
    config = rule.trigger_config or {}
    return getattr(facts, TIME_ANCHORS[config["field"]]) if config else None


def elapsed_seconds(rule: Rule) -> int:
    return round(float((rule.trigger_config or {})["hours"]) * 3600)


def time_due(rule: Rule, facts: TicketFacts, now: int) -> bool:
    anchor = time_anchor(rule, facts)
    return anchor is not None and anchor <= now - elapsed_seconds(rule)


# ---------------------------------------------------------------- plan


def _tag_key(tag: str) -> str:
    return tag.casefold()


def _changed(facts: TicketFacts, **changes: Any) -> TicketFacts:
    """A copy with `changes` (what `dataclasses.replace` does, without re-running __init__:
    plans copy the facts once per effective action, so this is the engine's hot path)."""
    copy = object.__new__(TicketFacts)
    copy.__dict__.update(facts.__dict__, **changes)
    return copy


def simulate(facts: TicketFacts, action: Action) -> TicketFacts:
    """The ticket as it will be after `action` (effects without state leave it unchanged)."""
    if action.type in FIELD_ACTIONS:
        attribute = FIELD_ACTIONS[action.type]
        if getattr(facts, attribute) == action.value:
            return facts
        return _changed(facts, **{attribute: action.value})
    if action.type == "assign_round_robin":
        return _changed(facts, assignee_id=ROUND_ROBIN, team_id=action.value)
    if action.type == "add_tag":
        if _tag_key(action.value) in {_tag_key(t) for t in facts.tags}:
            return facts
        return _changed(facts, tags=(*facts.tags, action.value))
    if action.type == "remove_tag":
        key = _tag_key(action.value)
        return _changed(facts, tags=tuple(t for t in facts.tags if _tag_key(t) != key))
    return facts


def plan(
    rules: Sequence[Rule], facts: TicketFacts, *, now: int, skip: Collection[str] = ()
) -> Plan:
    """Evaluate `rules` in order against `facts` and coalesce what the matching ones do."""
    result = Plan()
    current = facts
    last_setter: dict[str, str] = {}  # facts attribute or tag key → rule id
    round_robin: tuple[str, str] | None = None  # (team id, rule id)
    effects: list[Operation] = []
    for rule in rules:
        if rule.id in skip:
            result.results.append(RuleResult(rule, False, [], skipped=True))
            continue
        outcome = evaluate(rule, current, now)
        result.results.append(outcome)
        if not outcome.matched:
            continue
        for action in rule.actions:
            current = simulate(current, action)
            if action.type in FIELD_ACTIONS:
                last_setter[FIELD_ACTIONS[action.type]] = rule.id
                if action.type == "set_assignee":
                    round_robin = None
            elif action.type == "assign_round_robin":
                round_robin = (action.value, rule.id)
                last_setter["team_id"] = rule.id
            elif action.type in ("add_tag", "remove_tag"):
                last_setter["tag:" + _tag_key(action.value)] = rule.id
            elif action.type in EFFECT_ACTIONS:
                effects.append(Operation(action.type, action.value, rule.id))
        if rule.stops:
            break
    result.final = current
    result.operations = [*_field_operations(facts, current, last_setter, round_robin), *effects]
    return result


def _field_operations(
    before: TicketFacts,
    after: TicketFacts,
    setter: dict[str, str],
    round_robin: tuple[str, str] | None,
) -> Iterable[Operation]:
    for kind, attribute in FIELD_ACTIONS.items():
        if attribute == "assignee_id" and round_robin is not None:
            continue
        value = getattr(after, attribute)
        if value != getattr(before, attribute):
            yield Operation(kind, value, setter[attribute])
    if round_robin is not None:
        yield Operation("assign_round_robin", round_robin[0], round_robin[1])
    old = {_tag_key(t) for t in before.tags}
    new = {_tag_key(t): t for t in after.tags}
    for key, tag in new.items():
        if key not in old:
            yield Operation("add_tag", tag, setter["tag:" + key])
    for tag in before.tags:
        if _tag_key(tag) not in new:
            yield Operation("remove_tag", tag, setter["tag:" + _tag_key(tag)])
