"""The rule engine on its own: conditions, operators, all/any, order, stop, coalescing."""

from __future__ import annotations

import time

import pytest

from enque.automations.engine import (
    ROUND_ROBIN,
    Action,
    Condition,
    Rule,
    TicketFacts,
    evaluate,
    holds,
    plan,
    time_due,
)

NOW = 1_800_000_000
HOUR = 3600


def facts(**overrides: object) -> TicketFacts:
    base: dict[str, object] = {
        "id": "t1",
        "workspace_id": "w1",
        "subject": "URGENT: printer on fire",
        "body": "Hello,\nour Printer is on fire again.\nRegards",
        "status": "Open",
        "priority": "Medium",
        "customer_email": "Jane.Doe@Initech.test",
        "mailbox_id": "m1",
        "assignee_id": None,
        "team_id": "team-a",
        "category_id": "c1",
        "company_id": "co1",
        "tags": ("VIP", "billing"),
        "created_at": NOW - 10 * HOUR,
        "updated_at": NOW - 2 * HOUR,
        "last_customer_reply_at": NOW - 5 * HOUR,
    }
    base.update(overrides)
    return TicketFacts(**base)  # type: ignore[arg-type]


def rule(rule_id: str, conditions=(), actions=(), match="all", trigger="ticket.created"):
    return Rule(
        id=rule_id,
        name=rule_id,
        trigger=trigger,
        match=match,
        conditions=tuple(Condition(*c) for c in conditions),
        actions=tuple(Action(*a) for a in actions),
    )


def check(field: str, operator: str, value: object, **overrides: object) -> bool:
    return evaluate(rule("r", [(field, operator, value)]), facts(**overrides), NOW).matched


@pytest.mark.parametrize(
    ("field", "operator", "value", "expected"),
    [
        ("subject", "contains", "urgent", True),
        ("subject", "contains", "PRINTER ON", True),
        ("subject", "not_contains", "urgent", False),
        ("subject", "not_contains", "refund", True),
        ("subject", "is", "urgent: PRINTER on fire", True),
        ("subject", "is", "urgent", False),
        ("subject", "is_not", "urgent", True),
        ("subject", "starts_with", "urgent:", True),
        ("subject", "starts_with", "printer", False),
        ("subject", "matches", r"^urgent\b.*fire$", True),
        ("subject", "matches", r"^fire", False),
        ("body", "contains", "printer is on fire", True),
        ("body", "matches", r"(?m)^regards$", True),
        ("customer_email", "is", "jane.doe@initech.test", True),
        ("customer_email", "starts_with", "jane.", True),
        ("customer_domain", "is", "INITECH.test", True),
        ("customer_domain", "is_not", "initech.test", False),
        ("customer_domain", "contains", "initrode", False),
        ("tag", "is", "vip", True),
        ("tag", "is", "vi", False),
        ("tag", "contains", "ill", True),
        ("tag", "is_not", "vip", False),
        ("tag", "is_not", "spam", True),
        ("tag", "not_contains", "bill", False),
        ("tag", "starts_with", "bil", True),
        ("tag", "matches", "^v.p$", True),
        ("mailbox", "is", "m1", True),
        ("mailbox", "is_not", "m1", False),
        ("assignee", "is", None, True),
        ("assignee", "is_not", None, False),
        ("assignee", "is", "agent-1", False),
        ("assignee", "is_not", "agent-1", True),
        ("team", "is", "team-a", True),
        ("category", "is_not", "c2", True),
        ("company", "is", "co1", True),
        ("status", "is", "Open", True),
        ("status", "is_not", "Open", False),
        ("priority", "is", "Medium", True),
        ("priority", "gt", "Low", True),
        ("priority", "gt", "Medium", False),
        ("priority", "lt", "High", True),
        ("priority", "lt", "Medium", False),
        ("hours_since_created", "gt", 9.5, True),
        ("hours_since_created", "gt", 10, False),
        ("hours_since_created", "lt", 10.5, True),
        ("hours_since_updated", "gt", 1, True),
        ("hours_since_updated", "lt", 1, False),
        ("hours_since_customer_reply", "gt", 4.99, True),
        ("hours_since_customer_reply", "lt", 5, False),
    ],
)
def test_operators(field: str, operator: str, value: object, expected: bool) -> None:
    assert check(field, operator, value) is expected


def test_missing_values() -> None:
    """Unknown times never satisfy gt/lt; missing text is empty; no customer, no domain."""
    assert not check("hours_since_customer_reply", "gt", 0, last_customer_reply_at=None)
    assert not check("hours_since_customer_reply", "lt", 1000, last_customer_reply_at=None)
    assert check("customer_domain", "is_not", "initech.test", customer_email=None)
    assert not check("customer_email", "contains", "@", customer_email=None)
    assert check("customer_email", "not_contains", "@", customer_email=None)
    assert not check("tag", "is", "vip", tags=())
    assert check("tag", "is_not", "vip", tags=())


def test_case_insensitive_beyond_ascii() -> None:
    assert check("subject", "contains", "STRASSE", subject="Lieferung Straße 5")
    assert check("subject", "matches", "ÉTÉ", subject="rapport été")


def test_regex_is_linear_time() -> None:
    """A pattern that makes a backtracking engine explode is harmless with RE2."""
    started = time.perf_counter()
    assert not check("body", "matches", r"^(a+)+$", body="a" * 50_000 + "!")
    assert time.perf_counter() - started < 5  # a backtracking engine would never finish


def test_all_and_any_explain_every_condition() -> None:
    conditions = [("subject", "contains", "urgent"), ("priority", "is", "High")]
    result = evaluate(rule("r", conditions), facts(), NOW)
    assert not result.matched
    assert [(c.condition.field, c.actual, c.matched) for c in result.conditions] == [
        ("subject", "URGENT: printer on fire", True),
        ("priority", "Medium", False),
    ]
    assert evaluate(rule("r", conditions, match="any"), facts(), NOW).matched
    assert evaluate(rule("r", [], match="any"), facts(), NOW).matched
    assert evaluate(rule("r", []), facts(), NOW).matched


def test_rules_run_in_order_and_see_earlier_effects() -> None:
    first = rule("a", [("subject", "contains", "urgent")], [("set_priority", "High")])
    second = rule("b", [("priority", "is", "High")], [("add_tag", "escalated")])
    result = plan([first, second], facts(), now=NOW)
    assert [r.rule.id for r in result.results if r.matched] == ["a", "b"]
    assert [(o.type, o.value, o.rule_id) for o in result.operations] == [
        ("set_priority", "High", "a"),
        ("add_tag", "escalated", "b"),
    ]
    # in the other order, b does not see the change yet
    reverse = plan([second, first], facts(), now=NOW)
    assert [r.rule.id for r in reverse.results if r.matched] == ["a"]


def test_stop_ends_the_run() -> None:
    first = rule("a", [], [("add_tag", "one"), ("stop", None)])
    second = rule("b", [], [("add_tag", "two")])
    result = plan([first, second], facts(), now=NOW)
    assert [r.rule.id for r in result.results] == ["a"]
    assert [o.value for o in result.operations] == ["one"]


def test_operations_are_coalesced() -> None:
    rules = [
        rule("a", [], [("set_priority", "High"), ("add_tag", "x"), ("remove_tag", "vip")]),
        rule("b", [], [("set_priority", "Critical"), ("remove_tag", "X"), ("add_note", "hi")]),
        rule("c", [], [("set_status", "Open"), ("add_tag", "Billing")]),
    ]
    result = plan(rules, facts(), now=NOW)
    # status already Open, tag x added then removed, billing already there (any case)
    assert [(o.type, o.value, o.rule_id) for o in result.operations] == [
        ("set_priority", "Critical", "b"),
        ("remove_tag", "VIP", "a"),
        ("add_note", "hi", "b"),
    ]
    assert result.final is not None and result.final.tags == ("billing",)


def test_round_robin_and_explicit_assignee() -> None:
    rr = rule("a", [], [("assign_round_robin", "team-b")])
    explicit = rule("b", [], [("set_assignee", "agent-9")])
    result = plan([rr], facts(), now=NOW)
    assert [(o.type, o.value) for o in result.operations] == [
        ("set_team", "team-b"),
        ("assign_round_robin", "team-b"),
    ]
    assert result.final is not None and result.final.assignee_id == ROUND_ROBIN
    later = plan([rr, explicit], facts(), now=NOW)
    assert [(o.type, o.value) for o in later.operations] == [
        ("set_assignee", "agent-9"),
        ("set_team", "team-b"),
    ]


def test_skip_is_the_loop_guard() -> None:
    a = rule("a", [("priority", "is", "High")], [("set_priority", "Low")])
    b = rule("b", [("priority", "is", "Low")], [("set_priority", "High")])
    result = plan([a, b], facts(priority="High"), now=NOW, skip={"a"})
    assert [(r.rule.id, r.skipped, r.matched) for r in result.results] == [
        ("a", True, False),
        ("b", False, False),
    ]


def test_nothing_fires_nothing_to_do() -> None:
    result = plan([rule("a", [("status", "is", "Closed")], [("add_tag", "x")])], facts(), now=NOW)
    assert result.fired == [] and result.operations == []


def test_time_due() -> None:
    r = Rule("r", "r", "time.elapsed", trigger_config={"hours": 2, "field": "updated"})
    assert time_due(r, facts(updated_at=NOW - 2 * HOUR), NOW)
    assert not time_due(r, facts(updated_at=NOW - 2 * HOUR + 1), NOW)
    replied = Rule("r", "r", "time.elapsed", trigger_config={"hours": 1, "field": "customer_reply"})
    assert not time_due(replied, facts(last_customer_reply_at=None), NOW)


def test_holds_on_priority_rank_of_unknown_value() -> None:
    assert not holds(Condition("priority", "gt", "Low"), "Unknown")
