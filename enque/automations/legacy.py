"""Old Enque rules → automation rules in the wire shape (used by the legacy migration).

Two old kinds: `automations` (+ `automation_conditions`, `automation_actions`: enums, run on
new tickets, text compared case-insensitively, people and categories named by email or name)
and `workflows` (JSON conditions and actions, keyword-based "message" triggers). What has no
equivalent is reported in `problems`, with the old value, and the rule is imported inactive
so that nothing changes its behaviour silently; `notes` carry what is informational only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import re2

from enque.automations.schemas import PRIORITIES, STATUSES

# (kind, old value) → new id or None. Kinds: agent_email, team_name, category_name,
# company_name, mailbox (old mailbox_connections id). The migration resolves them.
Resolve = Callable[[str, str], str | None]


@dataclass
class LegacyConversion:
    rules: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# automation_conditions.condition_type → (field, resolve kind for ids or None for text/enum)
CONDITION_TYPES: dict[str, tuple[str, str | None]] = {
    "DESCRIPTION": ("subject", None),  # the old UI's "Subject"
    "TICKET_BODY": ("body", None),
    "USER": ("customer_email", None),
    "USER_DOMAIN": ("customer_domain", None),
    "INBOX": ("mailbox", "mailbox"),
    "AGENT": ("assignee", "agent_email"),
    "COMPANY": ("company", "company_name"),
    "PRIORITY": ("priority", None),
    "CATEGORY": ("category", "category_name"),
}
CONDITION_OPERATORS = {"EQL": "is", "NEQL": "is_not", "CON": "contains", "NCON": "not_contains"}
# automation_actions.action_type → (action, resolve kind or None)
ACTION_TYPES: dict[str, tuple[str, str | None]] = {
    "SET_AGENT": ("set_assignee", "agent_email"),
    "SET_PRIORITY": ("set_priority", None),
    "SET_STATUS": ("set_status", None),
    "SET_TEAM": ("set_team", "team_name"),
    "SET_CATEGORY": ("set_category", "category_name"),
    "ALSO_NOTIFY": ("notify_agents", "agent_email"),
}
LOGICAL = {"AND": "all", "OR": "any"}


def _enum(value: Any) -> str:
    return str(value or "").strip().upper()


def _canonical(value: str, allowed: Sequence[str]) -> str | None:
    """The old system compared enums case-insensitively."""
    return next((a for a in allowed if a.casefold() == value.strip().casefold()), None)


class _Converter:
    def __init__(self, name: str, resolve: Resolve) -> None:
        self.name = name
        self.resolve = resolve
        self.out = LegacyConversion()

    def problem(self, message: str) -> None:
        self.out.problems.append(f"{self.name}: {message}")

    def reference(self, kind: str, value: str, what: str) -> str | None:
        found = self.resolve(kind, value)
        if found is None:
            self.problem(f"{what}: {kind.replace('_', ' ')} {value!r} not found")
        return found

    def enum_value(self, field_name: str, value: str, what: str) -> str | None:
        allowed = STATUSES if field_name in ("status", "set_status") else PRIORITIES
        found = _canonical(value, allowed)
        if found is None:
            self.problem(f"{what}: {value!r} is not a {field_name.removeprefix('set_')} value")
        return found

    def rule(self, base: dict[str, Any], active: bool) -> dict[str, Any]:
        return {**base, "isActive": active and not self.out.problems}


# ---------------------------------------------------------------- automations


def _condition(conv: _Converter, row: Mapping[str, Any]) -> dict[str, Any] | None:
    kind, raw_op = _enum(row.get("condition_type")), _enum(row.get("condition_operator"))
    value = str(row.get("condition_value") or "").strip()
    what = f"condition {kind or '(empty)'} {raw_op or '(no operator)'} {value!r}"
    if kind not in CONDITION_TYPES:
        conv.problem(f"{what}: unknown condition type")
        return None
    if raw_op not in CONDITION_OPERATORS:
        conv.problem(f"{what}: unknown operator (the old system never matched it)")
        return None
    field_name, ref_kind = CONDITION_TYPES[kind]
    operator = CONDITION_OPERATORS[raw_op]
    if not value:
        conv.problem(f"{what}: empty value")
        return None
    if field_name == "priority" or ref_kind is not None:
        if operator not in ("is", "is_not"):
            conv.problem(f"{what}: {field_name} can only be compared with is / is not")
            return None
        if field_name == "priority":
            resolved = conv.enum_value("priority", value, what)
        else:
            assert ref_kind is not None
            resolved = conv.reference(ref_kind, value, what)
        if resolved is None:
            return None
        value = resolved
    return {"field": field_name, "operator": operator, "value": value}


def _action(conv: _Converter, row: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = _enum(row.get("action_type"))
    value = str(row.get("action_value") or "").strip()
    what = f"action {kind or '(empty)'} {value!r}"
    if kind not in ACTION_TYPES:
        conv.problem(f"{what}: unknown action type")
        return None
    action, ref_kind = ACTION_TYPES[kind]
    if not value:
        conv.problem(f"{what}: empty value")
        return None
    if ref_kind is None:
        resolved = conv.enum_value(action, value, what)
    else:
        resolved = conv.reference(ref_kind, value, what)
    if resolved is None:
        return None
    return {"type": action, "value": [resolved] if action == "notify_agents" else resolved}


def from_legacy(
    automation_row: Mapping[str, Any],
    conditions: Sequence[Mapping[str, Any]],
    actions: Sequence[Mapping[str, Any]],
    resolve: Resolve,
) -> LegacyConversion:
    """An old `automations` row with its conditions and actions → one rule on new tickets.

    The old engine combined conditions with the rule's `conditions_operator` (AND when null)
    and ignored each condition's `logical_operator`; it ran on new tickets only.
    """
    name = str(automation_row.get("name") or "").strip()
    name = name or f"Automation {automation_row.get('id')}"
    conv = _Converter(name, resolve)
    match_op = _enum(automation_row.get("conditions_operator")) or "AND"
    if match_op not in LOGICAL:
        conv.problem(f"conditions_operator {match_op!r} unknown; all conditions must hold")
    if _enum(automation_row.get("actions_operator")) == "OR":
        conv.problem(
            "actions_operator OR (only the first action that succeeded ran) has no "
            "equivalent: every action will run"
        )
    if not conditions:
        conv.problem("no conditions: the old system never ran it")
    new_conditions = [c for c in (_condition(conv, row) for row in conditions) if c]
    new_actions = [a for a in (_action(conv, row) for row in actions) if a]
    if not new_actions:
        conv.problem("no action left to run")
    if conv.out.problems and not new_actions:
        return conv.out
    base = {
        "name": name[:200],
        "trigger": "ticket.created",
        "triggerConfig": None,
        "match": LOGICAL.get(match_op, "all"),
        "conditions": new_conditions,
        "actions": new_actions,
    }
    conv.out.rules.append(conv.rule(base, bool(automation_row.get("is_active"))))
    return conv.out


# ---------------------------------------------------------------- workflows

EVENT_TRIGGERS = {
    "ticket.created": ["ticket.created"],
    "ticket.updated": ["ticket.updated"],
    "customer.replied": ["customer.replied"],
    "agent.replied": ["agent.replied"],
    "comment.added": ["customer.replied", "agent.replied"],
}
MESSAGE_TRIGGERS = ["ticket.created", "customer.replied"]  # where messages arrive
TRIGGER_LABELS = {
    "ticket.created": "new tickets",
    "customer.replied": "customer replies",
    "agent.replied": "agent replies",
}
WORKFLOW_FIELDS = {
    "status": "status",
    "ticket.status": "status",
    "priority": "priority",
    "ticket.priority": "priority",
    "subject": "subject",
    "title": "subject",
    "ticket.subject": "subject",
    "ticket.title": "subject",
    "body": "body",
    "description": "body",
    "ticket.description": "body",
}
WORKFLOW_OPERATORS = {
    "equals": "is",
    "not_equals": "is_not",
    "contains": "contains",
    "not_contains": "not_contains",
    "greater_than": "gt",
    "less_than": "lt",
}
URGENCY_PRIORITY = {"high": "Critical", "medium": "High", "low": "Medium"}


def _json(conv: _Converter, raw: Any, column: str, default: Any) -> Any:
    if raw is None or raw == "":
        return default
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        conv.problem(f"{column} is not valid JSON: {raw[:200]!r}")
        return default


def _words(raw: Any) -> list[str]:
    items = raw if isinstance(raw, list) else []
    return list(dict.fromkeys(w.strip() for w in items if isinstance(w, str) and w.strip()))


def _any_word(words: list[str]) -> dict[str, Any]:
    """Body contains any of the words (case-insensitive): one RE2 alternation."""
    return {"field": "body", "operator": "matches", "value": "|".join(re2.escape(w) for w in words)}


def _urgency_words(rules: Mapping[str, Any], levels: Sequence[str]) -> list[Any]:
    urgency = rules.get("urgency_keywords")
    if isinstance(urgency, list):
        return urgency
    if isinstance(urgency, dict):
        return [w for level in levels for w in urgency.get(level) or []]
    return []


def _message_condition(
    conv: _Converter, trigger: str, rules: Mapping[str, Any]
) -> list[dict[str, Any]] | None:
    """The old content trigger as body conditions; None when it has no equivalent."""
    kind = trigger.removeprefix("message.")
    if kind == "contains_keywords":
        words: list[Any] = rules.get("keywords") or []
    elif kind in ("urgency_high", "urgency_medium"):
        levels = ["high"] if kind == "urgency_high" else ["high", "medium"]
        words = _urgency_words(rules, levels)
    elif kind.startswith("category_") and not kind.startswith("category_custom_"):
        words = (rules.get("categories") or {}).get(kind.removeprefix("category_")) or []
    else:
        conv.problem(
            f"trigger {trigger!r} (sentiment, language or custom analysis) has no equivalent"
        )
        return None
    wanted = _words(words)
    if not wanted:
        conv.problem(f"trigger {trigger!r} has no keywords to look for")
        return None
    excluded = [
        {"field": "body", "operator": "not_contains", "value": w}
        for w in _words(rules.get("exclude_keywords"))
    ]
    return [_any_word(wanted), *excluded]


def _workflow_condition(conv: _Converter, item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        conv.problem(f"condition {item!r} is not an object")
        return None
    raw_field, raw_op, value = item.get("field"), item.get("operator"), item.get("value")
    what = f"condition {raw_field!r} {raw_op!r} {value!r}"
    field_name = WORKFLOW_FIELDS.get(str(raw_field))
    operator = WORKFLOW_OPERATORS.get(str(raw_op))
    if field_name is None or operator is None:
        conv.problem(f"{what}: no equivalent field or operator")
        return None
    if field_name in ("status", "priority"):
        allowed = ("is", "is_not", "gt", "lt") if field_name == "priority" else ("is", "is_not")
        canonical = conv.enum_value(field_name, str(value), what)
        if operator not in allowed:
            conv.problem(f"{what}: {field_name} cannot be compared with {raw_op}")
            return None
        if canonical is None:
            return None
        return {"field": field_name, "operator": operator, "value": canonical}
    if operator in ("gt", "lt") or not isinstance(value, str) or not value.strip():
        conv.problem(f"{what}: needs a text value and a text operator")
        return None
    return {"field": field_name, "operator": operator, "value": value.strip()}


def _workflow_action(conv: _Converter, item: Any, trigger: str) -> dict[str, Any] | None:
    kind = item.get("type") if isinstance(item, dict) else None
    if kind != "change_priority":
        conv.problem(f"action {item!r} has no equivalent")
        return None
    config = item.get("config") or {}
    if config.get("priority"):
        value = conv.enum_value("priority", str(config["priority"]), f"action {item!r}")
        return {"type": "set_priority", "value": value} if value else None
    # no priority given: the old engine chose it from the urgency it detected
    level = {"message.urgency_high": "high", "message.urgency_medium": "medium"}.get(trigger)
    if level is None:
        conv.problem(f"action {item!r}: priority chosen by detected urgency has no equivalent")
        return None
    if level == "medium":
        conv.out.notes.append(
            f"{conv.name}: messages with high-urgency words were set to "
            "Critical by the old engine; this rule sets High"
        )
    return {"type": "set_priority", "value": URGENCY_PRIORITY[level]}


def from_legacy_workflow(row: Mapping[str, Any], resolve: Resolve) -> LegacyConversion:
    """An old `workflows` row → one rule per event it ran on (two for message triggers)."""
    name = str(row.get("name") or "").strip() or f"Workflow {row.get('id')}"
    conv = _Converter(name, resolve)
    trigger = str(row.get("trigger") or "").strip()
    rules = _json(conv, row.get("message_analysis_rules"), "message_analysis_rules", {})
    conditions = _json(conv, row.get("conditions"), "conditions", [])
    actions = _json(conv, row.get("actions"), "actions", [])
    if row.get("description"):
        conv.out.notes.append(f"{name}: description not kept: {str(row['description'])[:200]!r}")
    new_conditions = []
    if trigger.startswith("message."):
        triggers = MESSAGE_TRIGGERS
        analysis = rules if isinstance(rules, dict) else {}
        new_conditions += _message_condition(conv, trigger, analysis) or []
    elif trigger in EVENT_TRIGGERS:
        triggers = EVENT_TRIGGERS[trigger]
        if trigger == "comment.added":
            conv.out.notes.append(f"{name}: internal notes no longer fire rules")
    else:
        conv.problem(f"unknown trigger {trigger!r}")
        return conv.out
    for item in conditions if isinstance(conditions, list) else [conditions]:
        found = _workflow_condition(conv, item)
        if found:
            new_conditions.append(found)
    new_actions = [
        a
        for a in (
            _workflow_action(conv, item, trigger)
            for item in (actions if isinstance(actions, list) else [actions])
        )
        if a
    ]
    if not new_actions:
        conv.problem("no action left to run")
        return conv.out
    for event in triggers:
        suffix = f" ({TRIGGER_LABELS[event]})" if len(triggers) > 1 else ""
        base = {
            "name": (name[: 200 - len(suffix)] + suffix),
            "trigger": event,
            "triggerConfig": None,
            "match": "all",
            "conditions": new_conditions,
            "actions": new_actions,
        }
        conv.out.rules.append(conv.rule(base, bool(row.get("is_enabled"))))
    return conv.out
