"""Conditions on custom fields: `ticket.custom.<key>`, `customer.custom.<key>` and
`company.custom.<key>` (the names canned-reply placeholders use).

The operators a condition may use depend on the field's type; a rule is checked against the
workspace's definitions when it is saved. Evaluation needs no definition: the operator and the
value (already checked) say how to compare. Strings compare case-insensitively, as every text
condition does; dates are ISO `YYYY-MM-DD` strings and "today" is the UTC date of the moment
the rule runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

# condition prefix → custom field entity
ENTITY_OF = {"ticket": "ticket", "customer": "user", "company": "company"}
PREFIX_OF = {entity: prefix for prefix, entity in ENTITY_OF.items()}
EMPTY_OPERATORS = ("is_empty", "is_not_empty")
TEXT = ("is", "is_not", "contains", "not_contains", "starts_with", "matches")
OPERATORS: dict[str, tuple[str, ...]] = {
    "text": (*TEXT, *EMPTY_OPERATORS),
    "number": ("is", "is_not", "gt", "lt", "gte", "lte", *EMPTY_OPERATORS),
    "date": ("is", "is_not", "before", "after", "within_next", "within_last", *EMPTY_OPERATORS),
    "dropdown": ("is", "is_not", "in", "not_in", *EMPTY_OPERATORS),
    "multiselect": ("includes_any", "includes_all", "includes_none", *EMPTY_OPERATORS),
    "checkbox": ("is_true", "is_false", *EMPTY_OPERATORS),
}
NO_VALUE = ("is_true", "is_false", *EMPTY_OPERATORS)
MAX_DAYS = 3650
MAX_CHOICES = 100


@dataclass(frozen=True)
class FieldDefinition:
    entity: str  # ticket | user | company
    key: str
    type: str
    options: tuple[str, ...] = ()

    @property
    def condition_field(self) -> str:
        return condition_field(self.entity, self.key)


def condition_field(entity: str, key: str) -> str:
    return f"{PREFIX_OF[entity]}.custom.{key}"


def is_custom(field: str) -> bool:
    return ".custom." in field


def entity_and_key(field: str) -> tuple[str, str]:
    prefix, _, key = field.partition(".custom.")
    return ENTITY_OF[prefix], key


def check_value(definition: FieldDefinition, operator: str, value: Any) -> tuple[Any, str | None]:
    """(the value to store, None) or (None, the problem); the operator fits the type."""
    if operator in NO_VALUE:
        return (None, None) if value is None else (None, f"{operator} takes no value")
    kind = definition.type
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return (value, None) if ok and math.isfinite(value) else (None, "must be a number")
    if kind == "date":
        if operator in ("within_next", "within_last"):
            ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_DAYS
            return (value, None) if ok else (None, f"must be a number of days 0-{MAX_DAYS}")
        try:
            return date.fromisoformat(value).isoformat(), None
        except (TypeError, ValueError):
            return None, "must be a date YYYY-MM-DD"
    if kind == "dropdown" and operator in ("is", "is_not"):
        if value in definition.options:
            return value, None
        return None, f"must be one of the options of {definition.key}"
    if kind in ("dropdown", "multiselect"):
        if (
            isinstance(value, list)
            and 0 < len(value) <= MAX_CHOICES
            and all(v in definition.options for v in value)
        ):
            return list(dict.fromkeys(value)), None
        return None, f"must be a list of options of {definition.key}"
    return value, None  # text: checked like every text condition


# ---------------------------------------------------------------- evaluation


def is_empty(actual: Any) -> bool:
    return actual is None or actual == "" or actual == []


def _folded(values: Any) -> set[str]:
    return {str(v).casefold() for v in values} if isinstance(values, list) else set()


def _today(now: int) -> date:
    return datetime.fromtimestamp(now, UTC).date()


def holds(operator: str, expected: Any, actual: Any, now: int) -> bool | None:
    """The outcome of a condition that only custom fields have, or None for the operators
    they share with text conditions (`is`, `contains`, …) on a string value."""
    if operator == "is_empty":
        return is_empty(actual)
    if operator == "is_not_empty":
        return not is_empty(actual)
    if operator in ("is_true", "is_false"):
        return (actual is True) == (operator == "is_true")
    if operator in ("includes_any", "includes_all", "includes_none"):
        have, wanted = _folded(actual), _folded(expected)
        if operator == "includes_all":
            return wanted <= have
        return bool(have & wanted) == (operator == "includes_any")
    if operator in ("in", "not_in"):
        found = isinstance(actual, str) and actual.casefold() in _folded(expected)
        return found == (operator == "in")
    if operator in ("before", "after", "within_next", "within_last"):
        return _date_holds(operator, expected, actual, now)
    if isinstance(expected, int | float) and not isinstance(expected, bool):
        return _number_holds(operator, expected, actual)
    return None


def _number_holds(operator: str, expected: float, actual: Any) -> bool:
    if not isinstance(actual, int | float) or isinstance(actual, bool):
        return operator == "is_not"
    return {
        "is": actual == expected,
        "is_not": actual != expected,
        "gt": actual > expected,
        "lt": actual < expected,
        "gte": actual >= expected,
        "lte": actual <= expected,
    }[operator]


def _date_holds(operator: str, expected: Any, actual: Any, now: int) -> bool:
    if not isinstance(actual, str):
        return False
    if operator == "before":
        return bool(actual < expected)
    if operator == "after":
        return bool(actual > expected)
    low, high = date_window(operator, expected, now)
    return low <= actual <= high


def date_window(operator: str, days: int, now: int) -> tuple[str, str]:
    """The ISO dates (inclusive) a `within_next` / `within_last` condition accepts."""
    today = _today(now)
    other = today + timedelta(days=days if operator == "within_next" else -days)
    low, high = sorted((today, other))
    return low.isoformat(), high.isoformat()


def definitions_by_field(definitions: list[FieldDefinition]) -> Mapping[str, FieldDefinition]:
    return {d.condition_field: d for d in definitions}
