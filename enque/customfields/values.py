"""Validation of custom field values per type, and their filter keys."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

TYPES = ("text", "number", "date", "dropdown", "multiselect", "checkbox")
TEXT_MAX = 10000
SEPARATOR = "|"


class InvalidValue(ValueError):
    pass


def check(field_type: str, options: list[str], value: Any) -> Any:
    """The value to store, or InvalidValue with the reason."""
    if field_type == "text":
        if not isinstance(value, str) or len(value) > TEXT_MAX:
            raise InvalidValue(f"must be text of at most {TEXT_MAX} characters")
        return value
    if field_type == "number":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidValue("must be a number")
        return value
    if field_type == "date":
        try:
            return date.fromisoformat(value).isoformat() if isinstance(value, str) else _no()
        except ValueError as exc:
            raise InvalidValue("must be a date YYYY-MM-DD") from exc
    if field_type == "dropdown":
        if value not in options:
            raise InvalidValue("must be one of the options")
        return value
    if field_type == "multiselect":
        if not isinstance(value, list) or any(v not in options for v in value):
            raise InvalidValue("must be a list of the options")
        return [o for o in options if o in value]  # option order, no repeats
    if field_type == "checkbox":
        if not isinstance(value, bool):
            raise InvalidValue("must be true or false")
        return value
    raise InvalidValue("unknown type")  # pragma: no cover


def _no() -> Any:
    raise ValueError


def keys(field_type: str, value: Any) -> tuple[str | None, float | None]:
    """(value_text, value_number) for filtering and sorting."""
    if field_type == "number":
        return None, float(value)
    if field_type == "checkbox":
        return ("true" if value else "false"), None
    if field_type == "multiselect":
        return (SEPARATOR + SEPARATOR.join(value) + SEPARATOR)[:255], None
    return str(value)[:255], None


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value is False
