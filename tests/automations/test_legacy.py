"""Old automations and workflows become rules of the new shape; what does not fit is reported."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from enque.automations.engine import Rule, TicketFacts, evaluate
from enque.automations.legacy import from_legacy, from_legacy_workflow
from enque.automations.schemas import AutomationIn, check_rule

KNOWN = {
    ("agent_email", "ann@old.test"): "agent-ann",
    ("agent_email", "bob@old.test"): "agent-bob",
    ("team_name", "Tier 2"): "team-2",
    ("category_name", "Billing"): "cat-billing",
    ("company_name", "Initech"): "co-initech",
    ("mailbox", "7"): "mailbox-7",
}


def resolve(kind: str, value: str) -> str | None:
    return KNOWN.get((kind, value))


def valid(rule: dict[str, Any]) -> AutomationIn:
    """Every converted rule is accepted by the API's own checks."""
    parsed = AutomationIn.model_validate(rule)
    check_rule(
        trigger=parsed.trigger,
        trigger_config=None,
        conditions=parsed.conditions,
        actions=parsed.actions,
    )
    return parsed


def automation(
    conditions: list[tuple[Any, Any, Any]], actions: list[tuple[Any, Any]], **row: Any
) -> Any:
    return from_legacy(
        {
            "id": 1,
            "name": "Old rule",
            "is_active": 1,
            "conditions_operator": "AND",
            "actions_operator": "AND",
            **row,
        },
        [
            {
                "condition_type": t,
                "condition_operator": o,
                "condition_value": v,
                "logical_operator": "AND",
            }
            for t, o, v in conditions
        ],
        [{"action_type": t, "action_value": v} for t, v in actions],
        resolve,
    )


@pytest.mark.parametrize(
    ("legacy", "expected"),
    [
        (("DESCRIPTION", "CON", " Urgent "), ("subject", "contains", "Urgent")),
        (("TICKET_BODY", "NCON", "unsubscribe"), ("body", "not_contains", "unsubscribe")),
        (("USER", "EQL", "Jane@Initech.test"), ("customer_email", "is", "Jane@Initech.test")),
        (("USER_DOMAIN", "NEQL", "initech.test"), ("customer_domain", "is_not", "initech.test")),
        (("INBOX", "EQL", "7"), ("mailbox", "is", "mailbox-7")),
        (("AGENT", "NEQL", "ann@old.test"), ("assignee", "is_not", "agent-ann")),
        (("COMPANY", "EQL", "Initech"), ("company", "is", "co-initech")),
        (("PRIORITY", "EQL", "high"), ("priority", "is", "High")),
        (("CATEGORY", "NEQL", "Billing"), ("category", "is_not", "cat-billing")),
        (("description", "eql", "x"), ("subject", "is", "x")),  # names in any case
    ],
)
def test_every_condition_type(legacy: tuple[str, str, str], expected: tuple[str, str, str]) -> None:
    result = automation([legacy], [("SET_PRIORITY", "High")])
    assert result.problems == []
    (rule,) = result.rules
    assert rule["conditions"] == [dict(zip(("field", "operator", "value"), expected, strict=True))]
    assert rule["trigger"] == "ticket.created" and rule["isActive"] is True
    valid(rule)


@pytest.mark.parametrize(
    ("legacy", "expected"),
    [
        (("SET_AGENT", "bob@old.test"), {"type": "set_assignee", "value": "agent-bob"}),
        (("SET_PRIORITY", "critical"), {"type": "set_priority", "value": "Critical"}),
        (("SET_STATUS", "With User"), {"type": "set_status", "value": "With User"}),
        (("SET_TEAM", "Tier 2"), {"type": "set_team", "value": "team-2"}),
        (("SET_CATEGORY", "Billing"), {"type": "set_category", "value": "cat-billing"}),
        (("ALSO_NOTIFY", "ann@old.test"), {"type": "notify_agents", "value": ["agent-ann"]}),
    ],
)
def test_every_action_type(legacy: tuple[str, str], expected: dict[str, Any]) -> None:
    result = automation([("DESCRIPTION", "CON", "x")], [legacy])
    assert result.problems == []
    assert result.rules[0]["actions"] == [expected]
    valid(result.rules[0])


def test_logical_operators() -> None:
    conditions = [("DESCRIPTION", "CON", "a"), ("DESCRIPTION", "CON", "b")]
    assert (
        automation(conditions, [("SET_STATUS", "Open")], conditions_operator="OR").rules[0]["match"]
        == "any"
    )
    assert (
        automation(conditions, [("SET_STATUS", "Open")], conditions_operator=None).rules[0]["match"]
        == "all"
    )
    # OR on actions ran only the first action that worked: reported, imported inactive
    result = automation(
        conditions, [("SET_STATUS", "Open"), ("SET_PRIORITY", "Low")], actions_operator="OR"
    )
    assert len(result.rules[0]["actions"]) == 2 and result.rules[0]["isActive"] is False
    assert "actions_operator OR" in result.problems[0]


def test_converted_rule_behaves_like_the_old_one() -> None:
    """Old: case-insensitive contains on the title, equality on the user's domain."""
    result = automation(
        [("DESCRIPTION", "CON", "URGENT"), ("USER_DOMAIN", "EQL", "Initech.test")],
        [("SET_PRIORITY", "High")],
    )
    rule = as_rule(result.rules[0])
    ticket = TicketFacts(
        id="t", workspace_id="w", subject="urgent please", customer_email="x@initech.TEST"
    )
    assert evaluate(rule, ticket, 0).matched


def as_rule(converted: dict[str, Any]) -> Rule:
    """The converted rule as the engine runs it."""
    parsed = valid(converted)
    return Rule.of(
        SimpleNamespace(
            id="r",
            name=parsed.name,
            trigger=parsed.trigger,
            match=parsed.match,
            trigger_config=None,
            conditions=[c.model_dump() for c in parsed.conditions],
            actions=[a.model_dump() for a in parsed.actions],
        )
    )


@pytest.mark.parametrize(
    ("conditions", "actions", "problem"),
    [
        ([("SHOE_SIZE", "EQL", "9")], [("SET_STATUS", "Open")], "unknown condition type"),
        ([("DESCRIPTION", "LIKE", "x")], [("SET_STATUS", "Open")], "unknown operator"),
        ([("DESCRIPTION", None, "x")], [("SET_STATUS", "Open")], "unknown operator"),
        ([("DESCRIPTION", "CON", "")], [("SET_STATUS", "Open")], "empty value"),
        ([("AGENT", "CON", "ann")], [("SET_STATUS", "Open")], "only be compared with is"),
        ([("PRIORITY", "CON", "hi")], [("SET_STATUS", "Open")], "only be compared with is"),
        ([("PRIORITY", "EQL", "Urgent")], [("SET_STATUS", "Open")], "not a priority value"),
        (
            [("AGENT", "EQL", "gone@old.test")],
            [("SET_STATUS", "Open")],
            "agent email 'gone@old.test' not found",
        ),
        ([("COMPANY", "EQL", "Initrode")], [("SET_STATUS", "Open")], "company name"),
        ([("INBOX", "EQL", "99")], [("SET_STATUS", "Open")], "mailbox '99' not found"),
        ([("CATEGORY", "EQL", "Nope")], [("SET_STATUS", "Open")], "category name"),
        ([("DESCRIPTION", "CON", "x")], [("EXPLODE", "1")], "unknown action type"),
        ([("DESCRIPTION", "CON", "x")], [("SET_STATUS", "Pending")], "not a status value"),
        ([("DESCRIPTION", "CON", "x")], [("SET_TEAM", "Tier 9")], "team name 'Tier 9'"),
        ([("DESCRIPTION", "CON", "x")], [("SET_AGENT", "")], "empty value"),
    ],
)
def test_unknown_values_are_reported_not_dropped(
    conditions: list[Any], actions: list[Any], problem: str
) -> None:
    keep_condition, keep_action = ("USER_DOMAIN", "EQL", "keep.test"), ("SET_PRIORITY", "Low")
    result = automation([*conditions, keep_condition], [*actions, keep_action])
    assert any(problem in p for p in result.problems), result.problems
    assert all(p.startswith("Old rule: ") for p in result.problems)
    (rule,) = result.rules  # what could be converted is kept, switched off
    assert rule["isActive"] is False
    assert {"field": "customer_domain", "operator": "is", "value": "keep.test"} in rule[
        "conditions"
    ]
    assert {"type": "set_priority", "value": "Low"} in rule["actions"]
    valid(rule)


def test_rule_without_conditions_never_ran() -> None:
    result = automation([], [("SET_STATUS", "Open")])
    assert result.problems == ["Old rule: no conditions: the old system never ran it"]
    assert result.rules[0]["isActive"] is False and result.rules[0]["conditions"] == []


def test_nothing_left_to_run_makes_no_rule() -> None:
    result = automation([("DESCRIPTION", "CON", "x")], [("SET_TEAM", "Nowhere")])
    assert result.rules == [] and len(result.problems) == 2


def test_inactive_stays_inactive() -> None:
    result = automation([("DESCRIPTION", "CON", "x")], [("SET_STATUS", "Open")], is_active=0)
    assert result.problems == [] and result.rules[0]["isActive"] is False


# ---------------------------------------------------------------- workflows


def workflow(trigger: str, **row: Any) -> Any:
    return from_legacy_workflow(
        {
            "id": 3,
            "name": "Flow",
            "is_enabled": 1,
            "trigger": trigger,
            "message_analysis_rules": None,
            "conditions": "[]",
            "actions": '[{"type": "change_priority", "config": {"priority": "High"}}]',
            **row,
        },
        resolve,
    )


@pytest.mark.parametrize(
    ("trigger", "triggers"),
    [
        ("ticket.created", ["ticket.created"]),
        ("ticket.updated", ["ticket.updated"]),
        ("customer.replied", ["customer.replied"]),
        ("agent.replied", ["agent.replied"]),
        ("comment.added", ["customer.replied", "agent.replied"]),
    ],
)
def test_event_workflows(trigger: str, triggers: list[str]) -> None:
    result = workflow(trigger)
    assert result.problems == []
    assert [r["trigger"] for r in result.rules] == triggers
    for rule in result.rules:
        assert rule["actions"] == [{"type": "set_priority", "value": "High"}]
        assert rule["isActive"] is True
        valid(rule)


def test_keyword_workflow() -> None:
    rules = {"keywords": ["refund", "money back", "refund"], "exclude_keywords": ["newsletter"]}
    result = workflow("message.contains_keywords", message_analysis_rules=rules)
    assert [r["trigger"] for r in result.rules] == ["ticket.created", "customer.replied"]
    assert [r["name"] for r in result.rules] == ["Flow (new tickets)", "Flow (customer replies)"]
    rule = as_rule(result.rules[0])
    assert rule.conditions[0].value == r"refund|money\ back"

    def matches(body: str) -> bool:
        return evaluate(rule, TicketFacts(id="t", workspace_id="w", body=body), 0).matched

    assert matches("I want my MONEY BACK")
    assert not matches("refund policy in our newsletter")
    assert not matches("hello")


URGENCY = {"urgency_keywords": {"high": ["asap"], "medium": ["soon"]}}
BY_URGENCY = [{"type": "change_priority", "config": {}}]
CRITICAL = [{"type": "change_priority", "config": {"priority": "Critical"}}]


@pytest.mark.parametrize(
    ("trigger", "analysis", "actions", "priority", "word"),
    [
        ("message.urgency_high", URGENCY, BY_URGENCY, "Critical", "asap"),
        ("message.urgency_medium", URGENCY, BY_URGENCY, "High", "soon"),
        ("message.urgency_medium", URGENCY, BY_URGENCY, "High", "asap"),
        ("message.urgency_high", {"urgency_keywords": ["now"]}, CRITICAL, "Critical", "now"),
        (
            "message.category_billing",
            {"categories": {"billing": ["invoice"]}},
            CRITICAL,
            "Critical",
            "invoice",
        ),
    ],
)
def test_analysis_workflows(
    trigger: str, analysis: dict[str, Any], actions: list[Any], priority: str, word: str
) -> None:
    result = workflow(trigger, message_analysis_rules=analysis, actions=actions)
    assert result.problems == []
    rule = as_rule(result.rules[0])
    assert rule.actions[0].value == priority
    ticket = TicketFacts(id="t", workspace_id="w", body=f"please {word.upper()}")
    assert evaluate(rule, ticket, 0).matched


@pytest.mark.parametrize(
    ("trigger", "analysis", "problem"),
    [
        ("message.sentiment_negative", {}, "has no equivalent"),
        ("message.sentiment_positive", {}, "has no equivalent"),
        ("message.language_detected", {}, "has no equivalent"),
        ("message.category_custom_7", {}, "has no equivalent"),
        ("message.category_praise", {}, "no keywords"),
        ("message.contains_keywords", {"keywords": []}, "no keywords"),
    ],
)
def test_analysis_without_equivalent(trigger: str, analysis: dict[str, Any], problem: str) -> None:
    result = workflow(trigger, message_analysis_rules=analysis)
    assert any(problem in p for p in result.problems)
    assert all(r["isActive"] is False for r in result.rules)


def test_workflow_conditions_and_problems() -> None:
    conditions = [
        {"field": "ticket.priority", "operator": "equals", "value": "high"},
        {"field": "ticket.title", "operator": "contains", "value": "outage"},
        {"field": "status", "operator": "not_equals", "value": "Closed"},
        {"field": "priority", "operator": "greater_than", "value": "Low"},
        {"field": "sentiment", "operator": "less_than", "value": -0.5},
        {"field": "subject", "operator": "is_empty", "value": ""},
    ]
    result = workflow("ticket.updated", conditions=conditions, description="Escalations")
    assert result.rules[0]["conditions"] == [
        {"field": "priority", "operator": "is", "value": "High"},
        {"field": "subject", "operator": "contains", "value": "outage"},
        {"field": "status", "operator": "is_not", "value": "Closed"},
        {"field": "priority", "operator": "gt", "value": "Low"},
    ]
    assert len(result.problems) == 2 and "sentiment" in result.problems[0]
    assert result.notes == ["Flow: description not kept: 'Escalations'"]
    valid(result.rules[0])


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"trigger": "ticket.exploded"}, "unknown trigger"),
        ({"actions": "not json"}, "actions is not valid JSON"),
        ({"actions": [{"type": "send_sms", "config": {}}]}, "has no equivalent"),
        ({"actions": [{"type": "change_priority", "config": {}}]}, "detected urgency"),
        (
            {"actions": [{"type": "change_priority", "config": {"priority": "P1"}}]},
            "not a priority",
        ),
    ],
)
def test_workflow_problems(row: dict[str, Any], problem: str) -> None:
    result = workflow(row.pop("trigger", "ticket.created"), **row)
    assert any(problem in p for p in result.problems), result.problems
    assert result.rules == []
