"""The wire shape of automation rules (data-model.md) and its strict checks.

Pydantic checks the shape (unknown keys, fields, operators and action types); `check_rule`
checks what depends on combinations: the operators a field allows, the type of each value,
RE2 patterns, trigger settings. Both report `{path, message}` like every validation error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal, get_args

import re2
from pydantic import AfterValidator, Field, StrictFloat, StrictInt, field_validator

from enque.automations import custom
from enque.core.api import ApiInput, ApiModel
from enque.core.errors import ApiError

Trigger = Literal[
    "ticket.created",
    "ticket.updated",
    "customer.replied",
    "agent.replied",
    "time.elapsed",
    "sla.warning",
    "sla.breached",
]
SLA_TRIGGERS = ("sla.warning", "sla.breached")  # the SLA events of the same names
SlaTarget = Literal["firstResponse", "nextResponse", "resolution"]
TimeField = Literal["created", "updated", "customer_reply", "agent_reply"]
Match = Literal["all", "any"]
ConditionField = Literal[
    "subject",
    "body",
    "customer_email",
    "customer_domain",
    "mailbox",
    "assignee",
    "team",
    "priority",
    "status",
    "category",
    "company",
    "tag",
    "hours_since_created",
    "hours_since_updated",
    "hours_since_customer_reply",
    "sla_target",
]
# a custom field of the ticket, its customer or its company: `ticket.custom.<key>`,
# `customer.custom.<key>`, `company.custom.<key>` (the names canned replies use)
CUSTOM_FIELD = re2.compile(r"^(ticket|customer|company)\.custom\.[a-z][a-z0-9_]{0,49}$")


def _condition_field(value: str) -> str:
    if value in get_args(ConditionField) or CUSTOM_FIELD.match(value):
        return value
    raise ValueError(
        f"must be one of {', '.join(get_args(ConditionField))} "
        "or a custom field: ticket.custom.<key>, customer.custom.<key>, company.custom.<key>"
    )


ConditionFieldName = Annotated[str, AfterValidator(_condition_field)]
Operator = Literal[
    "is",
    "is_not",
    "contains",
    "not_contains",
    "starts_with",
    "matches",
    "gt",
    "lt",
    "gte",
    "lte",
    "before",
    "after",
    "within_next",
    "within_last",
    "in",
    "not_in",
    "includes_any",
    "includes_all",
    "includes_none",
    "is_true",
    "is_false",
    "is_empty",
    "is_not_empty",
]
ActionType = Literal[
    "set_status",
    "set_priority",
    "set_assignee",
    "assign_round_robin",
    "set_team",
    "set_category",
    "add_tag",
    "remove_tag",
    "add_note",
    "send_canned_reply",
    "notify_agents",
    "stop",
]

STATUSES = ("Unread", "Open", "In Progress", "With User", "Closed")
PRIORITIES = ("Low", "Medium", "High", "Critical")
SLA_TARGETS: tuple[str, ...] = get_args(SlaTarget)

TEXT_OPERATORS = ("is", "is_not", "contains", "not_contains", "starts_with", "matches")
TEXT_FIELDS = ("subject", "body", "customer_email", "customer_domain")
# condition field → the kind of resource its id names
ID_FIELDS = {
    "mailbox": "mailbox",
    "assignee": "agent",
    "team": "team",
    "category": "category",
    "company": "company",
}
HOURS_FIELDS = ("hours_since_created", "hours_since_updated", "hours_since_customer_reply")
OPERATORS: dict[str, tuple[str, ...]] = {
    **{f: TEXT_OPERATORS for f in (*TEXT_FIELDS, "tag")},
    **{f: ("is", "is_not") for f in ID_FIELDS},
    "status": ("is", "is_not"),
    "sla_target": ("is", "is_not"),
    "priority": ("is", "is_not", "gt", "lt"),
    **{f: ("gt", "lt") for f in HOURS_FIELDS},
}
# action type → the kind of resource its id value names (None: no reference)
ACTION_REFS = {
    "set_assignee": "agent",
    "assign_round_robin": "team",
    "set_team": "team",
    "set_category": "category",
    "send_canned_reply": "canned_reply",
    "notify_agents": "agent",
}

MAX_TEXT = 500
MAX_NOTE = 10_000
MAX_TAG = 64
MAX_HOURS = 24 * 365 * 5


# ---------------------------------------------------------------- wire shapes


class ConditionIn(ApiInput):
    field: ConditionFieldName
    operator: Operator
    value: Any = None


class ActionIn(ApiInput):
    type: ActionType
    value: Any = None


class TriggerConfig(ApiInput):
    """For `time.elapsed`: fire once `hours` have passed since the ticket's `field` time."""

    hours: Annotated[StrictInt | StrictFloat, Field(gt=0, le=MAX_HOURS)]
    field: TimeField


Name = Annotated[str, Field(min_length=1, max_length=200)]
Conditions = Annotated[list[ConditionIn], Field(max_length=50)]
Actions = Annotated[list[ActionIn], Field(min_length=1, max_length=20)]


class AutomationIn(ApiInput):
    name: Name
    trigger: Trigger
    trigger_config: TriggerConfig | None = None
    match: Match = "all"
    is_active: bool = True
    position: Annotated[int, Field(ge=0)] | None = None
    conditions: Conditions = Field(default_factory=list)
    actions: Actions


class AutomationPatch(ApiInput):
    name: Name | None = None
    trigger: Trigger | None = None
    trigger_config: TriggerConfig | None = None
    match: Match | None = None
    is_active: bool | None = None
    position: Annotated[int, Field(ge=0)] | None = None
    conditions: Conditions | None = None
    actions: Actions | None = None

    @field_validator("name", "trigger", "match", "is_active", "position", "conditions", "actions")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out, not null")
        return value


class DryRunIn(ApiInput):
    ticket_id: Annotated[str, Field(min_length=1, max_length=64)]
    # for sla.* rules: the target whose warning or breach to assume (default: the first one
    # the ticket has had)
    sla_target: SlaTarget | None = None


class AutomationOut(ApiModel):
    id: str
    name: str
    is_active: bool
    trigger: str
    trigger_config: dict[str, Any] | None
    match: str
    conditions: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    position: int
    created_by_id: str | None
    run_count: int
    last_run_at: int | None
    created_at: int
    updated_at: int


class ConditionResultOut(ApiModel):
    field: str
    operator: str
    value: Any
    actual: Any
    matched: bool


class ActionResultOut(ApiModel):
    type: str
    value: Any
    effect: str


class DryRunOut(ApiModel):
    automation_id: str
    ticket_id: str
    trigger: str
    trigger_satisfied: bool
    match: str
    matched: bool
    conditions: list[ConditionResultOut]
    actions: list[ActionResultOut]
    stops_further_rules: bool
    sla_target: str | None = None  # sla.* rules: the target the event is assumed to name


# ---------------------------------------------------------------- checks


@lru_cache(maxsize=2048)
def compile_pattern(pattern: str) -> Any:
    """An RE2 program (linear time), case-insensitive; raises ValueError when invalid."""
    options = re2.Options()
    options.case_sensitive = False
    options.never_capture = True
    options.log_errors = False
    options.max_mem = 8 << 20
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        message = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(f"invalid pattern: {message}") from exc


@dataclass(frozen=True)
class Reference:
    """An id a rule names, checked against the workspace before saving."""

    path: str
    kind: str
    id: str


class Problems:
    def __init__(self) -> None:
        self.details: list[dict[str, str]] = []
        self.references: list[Reference] = []

    def add(self, path: str, message: str) -> None:
        self.details.append({"path": path, "message": message})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any, limit: int) -> str | None:
    if isinstance(value, str) and value.strip() and len(value) <= limit:
        return value
    return None


def _id(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 64 else None


def _check_custom_condition(
    definition: custom.FieldDefinition | None, operator: str, value: Any, path: str, out: Problems
) -> Any:
    if definition is None:
        out.add(f"{path}.field", "no custom field with this key in the workspace")
        return None
    allowed = custom.OPERATORS[definition.type]
    if operator not in allowed:
        out.add(
            f"{path}.operator",
            f"operator {operator!r} is not allowed on a {definition.type} field "
            f"({', '.join(allowed)})",
        )
        return None
    if definition.type == "text" and operator in custom.TEXT:
        return _check_text(value, operator, path, out)
    checked, problem = custom.check_value(definition, operator, value)
    if problem is not None:
        out.add(f"{path}.value", problem)
    return checked


def _check_text(value: Any, operator: str, path: str, out: Problems) -> str | None:
    text = _text(value, MAX_TEXT)
    if text is None:
        out.add(f"{path}.value", f"must be a non-empty string of at most {MAX_TEXT} characters")
        return None
    if operator == "matches":
        try:
            compile_pattern(text)
        except ValueError as exc:
            out.add(f"{path}.value", str(exc))
            return None
        return text
    return text.strip()


def _check_condition(field: str, operator: str, value: Any, path: str, out: Problems) -> Any:
    """The normalised value, or None after adding a problem."""
    if operator not in OPERATORS[field]:
        allowed = ", ".join(OPERATORS[field])
        out.add(f"{path}.operator", f"operator {operator!r} is not allowed on {field} ({allowed})")
        return None
    if field in (*TEXT_FIELDS, "tag"):
        return _check_text(value, operator, path, out)
    if field == "status":
        if value not in STATUSES:
            out.add(f"{path}.value", f"must be one of {', '.join(STATUSES)}")
        return value
    if field == "sla_target":
        if value not in SLA_TARGETS:
            out.add(f"{path}.value", f"must be one of {', '.join(SLA_TARGETS)}")
        return value
    if field == "priority":
        if value not in PRIORITIES:
            out.add(f"{path}.value", f"must be one of {', '.join(PRIORITIES)}")
        return value
    if field in ID_FIELDS:
        if value is None:
            return None
        ident = _id(value)
        if ident is None:
            out.add(f"{path}.value", "must be an id (string) or null for none")
        else:
            out.references.append(Reference(f"{path}.value", ID_FIELDS[field], ident))
        return ident
    if not _is_number(value) or not 0 <= value <= MAX_HOURS:
        out.add(f"{path}.value", f"must be a number of hours between 0 and {MAX_HOURS}")
    return value


def _check_action(kind: str, value: Any, path: str, out: Problems) -> Any:
    if kind == "stop":
        if value is not None:
            out.add(f"{path}.value", "stop takes no value")
        return None
    if kind in ("set_status", "set_priority"):
        allowed = STATUSES if kind == "set_status" else PRIORITIES
        if value not in allowed:
            out.add(f"{path}.value", f"must be one of {', '.join(allowed)}")
        return value
    if kind in ("add_tag", "remove_tag"):
        text = _text(value, MAX_TAG)
        if text is None:
            out.add(f"{path}.value", f"must be a tag of 1 to {MAX_TAG} characters")
        return text.strip() if text else None
    if kind == "add_note":
        text = _text(value, MAX_NOTE)
        if text is None:
            out.add(f"{path}.value", f"must be a non-empty text of at most {MAX_NOTE} characters")
        return text
    if kind == "notify_agents":
        ids = value if isinstance(value, list) else None
        if not ids or len(ids) > 20 or any(_id(i) is None for i in ids):
            out.add(f"{path}.value", "must be a list of 1 to 20 agent ids")
            return None
        unique = list(dict.fromkeys(ids))
        for i, ident in enumerate(unique):
            out.references.append(Reference(f"{path}.value.{i}", "agent", ident))
        return unique
    nullable = kind in ("set_assignee", "set_team", "set_category")
    if value is None and nullable:
        return None
    ident = _id(value)
    if ident is None:
        out.add(f"{path}.value", "must be an id (string)" + (" or null" if nullable else ""))
        return None
    out.references.append(Reference(f"{path}.value", ACTION_REFS[kind], ident))
    return ident


@dataclass
class CheckedRule:
    conditions: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    references: list[Reference]


def check_rule(
    *,
    trigger: str,
    trigger_config: dict[str, Any] | None,
    conditions: list[ConditionIn],
    actions: list[ActionIn],
    fields: Mapping[str, custom.FieldDefinition] | None = None,
) -> CheckedRule:
    """Normalised conditions and actions plus the ids they name; VALIDATION_ERROR otherwise.
    `fields` are the workspace's custom fields by condition name (`ticket.custom.plan`)."""
    out = Problems()
    if trigger == "time.elapsed" and trigger_config is None:
        out.add("triggerConfig", "time.elapsed needs {hours, field}")
    if trigger != "time.elapsed" and trigger_config is not None:
        out.add("triggerConfig", "only time.elapsed takes a trigger configuration")
    checked_conditions = []
    for i, cond in enumerate(conditions):
        if cond.field == "sla_target" and trigger not in SLA_TRIGGERS:
            out.add(f"conditions.{i}.field", "sla_target needs an sla.warning or sla.breached rule")
        if custom.is_custom(cond.field):
            definition = (fields or {}).get(cond.field)
            path = f"conditions.{i}"
            value = _check_custom_condition(definition, cond.operator, cond.value, path, out)
        else:
            value = _check_condition(cond.field, cond.operator, cond.value, f"conditions.{i}", out)
        checked_conditions.append({"field": cond.field, "operator": cond.operator, "value": value})
    checked_actions = []
    for i, action in enumerate(actions):
        value = _check_action(action.type, action.value, f"actions.{i}", out)
        if action.type == "stop" and i != len(actions) - 1:
            out.add(f"actions.{i}.type", "stop must be the last action")
        checked_actions.append({"type": action.type, "value": value})
    if out.details:
        raise ApiError("VALIDATION_ERROR", "Validation failed", out.details)
    return CheckedRule(checked_conditions, checked_actions, out.references)
