"""The reaction end to end: an event → rules of its trigger → actions through the executor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from enque.activity.models import Activity
from enque.automations.models import Automation
from enque.automations.runner import MAX_DEPTH
from enque.core.events import Event, emit
from enque.core.runtime import Runtime
from tests.automations.support import FakeTickets, add_agent, add_team
from tests.support.api import Tenant, data


async def make_rule(
    tenant: Tenant, name: str, trigger: str, conditions: list[Any], actions: list[Any], **extra: Any
) -> str:
    body = {"name": name, "trigger": trigger, "conditions": conditions, "actions": actions, **extra}
    return data(await tenant.post("/v1/automations", json=body), 201)["id"]  # type: ignore[no-any-return]


def cond(field: str, operator: str, value: Any) -> dict[str, Any]:
    return {"field": field, "operator": operator, "value": value}


def act(kind: str, value: Any = None) -> dict[str, Any]:
    return {"type": kind, "value": value}


async def raise_event(runtime: Runtime, event: Event) -> None:
    """What a service function does: emit in a unit; reactions run after the commit."""
    async with runtime.db.transaction() as session:
        emit(session, event)


def created(workspace_id: str, ticket_id: str) -> Event:
    return Event(
        "ticket.created", workspace_id, {"id": ticket_id}, actor={"type": "user", "id": None}
    )


def updated(workspace_id: str, ticket_id: str, changes: dict[str, Any]) -> Event:
    return Event(
        "ticket.updated",
        workspace_id,
        {"id": ticket_id, "changes": changes, "ticket": {"id": ticket_id}},
        actor={"type": "agent", "id": "someone"},
    )


@pytest.fixture
def seen(app_runtime: Runtime) -> Iterator[list[Event]]:
    """Every event delivered while the test runs."""
    events: list[Event] = []

    async def capture(event: Event) -> None:
        events.append(event)

    app_runtime.reactions.insert(0, capture)
    yield events
    app_runtime.reactions.remove(capture)


async def runs_of(runtime: Runtime, ticket_id: str) -> list[Activity]:
    async with runtime.db.session(write=False) as session:
        stmt = (
            select(Activity)
            .where(Activity.subject_id == ticket_id, Activity.verb == "automation.ran")
            .order_by(Activity.id)
        )
        return list((await session.execute(stmt)).scalars())


async def test_triage_on_new_ticket(
    tenant: Tenant, app_runtime: Runtime, fake_tickets: FakeTickets, seen: list[Event]
) -> None:
    agent = await add_agent(app_runtime, tenant.workspace_id)
    team = await add_team(app_runtime, tenant.workspace_id, [agent])
    rule_id = await make_rule(
        tenant,
        "Urgent to Tier 2",
        "ticket.created",
        [cond("subject", "contains", "urgent"), cond("customer_domain", "is", "initech.test")],
        [act("set_priority", "Critical"), act("set_team", team), act("add_tag", "vip")],
    )
    hit = fake_tickets.add(
        tenant.workspace_id, subject="URGENT: down", customer_email="ann@initech.test"
    )
    miss = fake_tickets.add(
        tenant.workspace_id, subject="URGENT: down", customer_email="ann@initrode.test"
    )
    await raise_event(app_runtime, created(tenant.workspace_id, hit.id))
    await raise_event(app_runtime, created(tenant.workspace_id, miss.id))

    assert fake_tickets.done(hit.id) == [
        ("set_priority", "Critical"),
        ("set_team", team),
        ("add_tag", "vip"),
    ]
    assert fake_tickets.done(miss.id) == []
    assert {c.actor["type"] for c in fake_tickets.calls} == {"automation"}
    assert {c.actor["id"] for c in fake_tickets.calls} == {rule_id}
    # the three changes were one update: one event of depth 1 naming the rule, no loop
    assert [len(ops) for ticket_id, ops in fake_tickets.updates if ticket_id == hit.id] == [3]
    (followup,) = [e for e in seen if e.type == "ticket.updated"]
    assert (followup.depth, followup.chain) == (1, [rule_id])
    assert followup.actor == {"type": "automation", "id": rule_id}
    assert set(followup.payload["changes"]) == {"priority", "team_id", "tags"}
    (run,) = await runs_of(app_runtime, hit.id)
    assert run.actor_type == "automation" and run.actor_id == rule_id
    assert run.after is not None and run.after["automation"] == "Urgent to Tier 2"
    assert [a["result"] for a in run.after["actions"]] == ["applied"] * 3
    rule = data(await tenant.get(f"/v1/automations/{rule_id}"))
    assert rule["runCount"] == 1 and rule["lastRunAt"] is not None


async def test_only_active_rules_of_the_trigger_in_order_until_stop(
    tenant: Tenant, app_runtime: Runtime, fake_tickets: FakeTickets
) -> None:
    await make_rule(
        tenant, "inactive", "ticket.created", [], [act("add_tag", "inactive")], isActive=False
    )
    await make_rule(tenant, "on update", "ticket.updated", [], [act("add_tag", "updated")])
    await make_rule(tenant, "first", "ticket.created", [], [act("add_tag", "first")])
    await make_rule(
        tenant,
        "stopper",
        "ticket.created",
        [cond("priority", "is", "High")],
        [act("add_tag", "stopped"), act("stop")],
    )
    await make_rule(tenant, "last", "ticket.created", [], [act("add_tag", "last")])
    high = fake_tickets.add(tenant.workspace_id, priority="High")
    low = fake_tickets.add(tenant.workspace_id, priority="Low")
    await raise_event(app_runtime, created(tenant.workspace_id, high.id))
    await raise_event(app_runtime, created(tenant.workspace_id, low.id))
    # the tag changes raise ticket.updated (depth 1): the update rule runs once on each
    assert fake_tickets.done(high.id) == [
        ("add_tag", "first"),
        ("add_tag", "stopped"),
        ("add_tag", "updated"),
    ]
    assert fake_tickets.done(low.id) == [
        ("add_tag", "first"),
        ("add_tag", "last"),
        ("add_tag", "updated"),
    ]


@pytest.mark.parametrize(
    ("order", "calls"),
    [
        # A then B in one pass: Low then High again, nothing left to change
        ("ab", []),
        # B does not match High; A sets Low; that change makes B set High; A is in the chain
        ("ba", [("set_priority", "Low"), ("set_priority", "High")]),
    ],
)
async def test_ping_pong_rules_are_bounded(
    tenant: Tenant,
    app_runtime: Runtime,
    fake_tickets: FakeTickets,
    seen: list[Event],
    order: str,
    calls: list[Any],
) -> None:
    """A: High → Low and B: Low → High on ticket.updated fire once per originating change."""
    rules = {
        "a": ([cond("priority", "is", "High")], [act("set_priority", "Low")]),
        "b": ([cond("priority", "is", "Low")], [act("set_priority", "High")]),
    }
    ids = {}
    for name in order:
        ids[name] = await make_rule(tenant, name, "ticket.updated", *rules[name])
    ticket = fake_tickets.add(tenant.workspace_id, priority="High")
    for round_ in (1, 2):  # a second human change is a new origin: once more each
        await raise_event(
            app_runtime, updated(tenant.workspace_id, ticket.id, {"priority": ["Medium", "High"]})
        )
        fired = [r.actor_id for r in await runs_of(app_runtime, ticket.id)]
        assert sorted(fired) == sorted([ids["a"], ids["b"]] * round_)
        assert fake_tickets.done() == calls * round_
        assert fake_tickets.tickets[ticket.id].priority == "High"
        for rule_id in ids.values():
            assert data(await tenant.get(f"/v1/automations/{rule_id}"))["runCount"] == round_
    assert max(e.depth for e in seen) == (2 if calls else 0)


async def test_rules_do_not_retrigger_themselves(
    tenant: Tenant, app_runtime: Runtime, fake_tickets: FakeTickets
) -> None:
    """A rule whose action keeps its own condition true runs once per originating change."""
    rule_id = await make_rule(
        tenant,
        "note on update",
        "ticket.updated",
        [],
        [act("add_tag", "touched"), act("remove_tag", "new")],
    )
    ticket = fake_tickets.add(tenant.workspace_id, tags=("new",))
    await raise_event(app_runtime, updated(tenant.workspace_id, ticket.id, {"status": ["a", "b"]}))
    assert fake_tickets.done() == [("add_tag", "touched"), ("remove_tag", "new")]
    assert [r.actor_id for r in await runs_of(app_runtime, ticket.id)] == [rule_id]


async def test_depth_limit(tenant: Tenant, app_runtime: Runtime, fake_tickets: FakeTickets) -> None:
    await make_rule(tenant, "any update", "ticket.updated", [], [act("add_tag", "x")])
    ticket = fake_tickets.add(tenant.workspace_id)
    deep = updated(tenant.workspace_id, ticket.id, {})
    deep.depth = MAX_DEPTH
    await raise_event(app_runtime, deep)
    assert fake_tickets.calls == []
    await raise_event(app_runtime, updated(tenant.workspace_id, ticket.id, {}))
    assert fake_tickets.done() == [("add_tag", "x")]


async def test_comment_triggers(
    tenant: Tenant, app_runtime: Runtime, fake_tickets: FakeTickets
) -> None:
    await make_rule(tenant, "customer", "customer.replied", [], [act("add_tag", "customer")])
    await make_rule(tenant, "agent", "agent.replied", [], [act("add_tag", "agent")])
    ticket = fake_tickets.add(tenant.workspace_id)

    def comment(kind: str) -> Event:
        return Event(
            "comment.created",
            tenant.workspace_id,
            {"ticketId": ticket.id, "comment": {"id": "c", "kind": kind}},
        )

    for kind in ("note", "system", "customer", "reply"):
        await raise_event(app_runtime, comment(kind))
    assert fake_tickets.done() == [("add_tag", "customer"), ("add_tag", "agent")]


async def test_other_workspace_rules_never_run(
    tenant: Tenant,
    make_tenant: Callable[[], Awaitable[Tenant]],
    app_runtime: Runtime,
    fake_tickets: FakeTickets,
) -> None:
    other = await make_tenant()
    await make_rule(other, "theirs", "ticket.created", [], [act("add_tag", "theirs")])
    ticket = fake_tickets.add(tenant.workspace_id)
    await raise_event(app_runtime, created(tenant.workspace_id, ticket.id))
    # the event names a ticket of another workspace: the loader finds nothing
    await raise_event(app_runtime, created(other.workspace_id, ticket.id))
    assert fake_tickets.calls == []


async def test_failing_action_is_isolated(
    tenant: Tenant, app_runtime: Runtime, fake_tickets: FakeTickets
) -> None:
    await make_rule(
        tenant,
        "mixed",
        "ticket.created",
        [],
        [act("set_status", "Open"), act("set_priority", "High"), act("add_tag", "after")],
    )
    fake_tickets.fail.add("set_priority")
    ticket = fake_tickets.add(tenant.workspace_id, status="Unread")
    await raise_event(app_runtime, created(tenant.workspace_id, ticket.id))
    assert fake_tickets.done() == [("set_status", "Open"), ("add_tag", "after")]
    (run,) = await runs_of(app_runtime, ticket.id)
    assert run.after is not None
    assert [a["result"] for a in run.after["actions"]] == [
        "applied",
        "failed: set_priority refused",
        "applied",
    ]


async def test_round_robin_through_a_rule(
    tenant: Tenant, app_runtime: Runtime, fake_tickets: FakeTickets
) -> None:
    members = [await add_agent(app_runtime, tenant.workspace_id) for _ in range(2)]
    team = await add_team(app_runtime, tenant.workspace_id, members)
    await make_rule(tenant, "rr", "ticket.created", [], [act("assign_round_robin", team)])
    tickets = [fake_tickets.add(tenant.workspace_id) for _ in range(4)]
    for ticket in tickets:
        await raise_event(app_runtime, created(tenant.workspace_id, ticket.id))
    assigned = [fake_tickets.tickets[t.id].assignee_id for t in tickets]
    assert sorted(assigned) == sorted(members * 2)
    assert assigned[0] != assigned[1]
    assert all(fake_tickets.tickets[t.id].team_id == team for t in tickets)


async def test_round_robin_without_active_members(
    tenant: Tenant, app_runtime: Runtime, fake_tickets: FakeTickets
) -> None:
    gone = await add_agent(app_runtime, tenant.workspace_id, active=False)
    team = await add_team(app_runtime, tenant.workspace_id, [gone])
    async with app_runtime.db.transaction() as session:  # a rule saved before they left
        session.add(
            Automation(
                workspace_id=tenant.workspace_id,
                name="rr",
                trigger="ticket.created",
                conditions=[],
                actions=[{"type": "assign_round_robin", "value": team}],
            )
        )
    ticket = fake_tickets.add(tenant.workspace_id, team_id=team)
    await raise_event(app_runtime, created(tenant.workspace_id, ticket.id))
    (run,) = await runs_of(app_runtime, ticket.id)
    assert run.after is not None
    assert run.after["actions"][0]["result"] == "skipped: the team has no active member"
    assert fake_tickets.calls == []


class TestCannedReplies:
    """Automatic messages obey email.md."""

    async def setup_rule(
        self, tenant: Tenant, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async def replies(session: Any, workspace_id: str, ids: set[str]) -> set[str]:
            return ids & {"ack"}

        monkeypatch.setitem(app_runtime.services, "lookups", {"canned_reply": replies})
        await make_rule(tenant, "ack", "ticket.created", [], [act("send_canned_reply", "ack")])

    async def results(self, runtime: Runtime, ticket_id: str) -> list[str]:
        runs = await runs_of(runtime, ticket_id)
        return [a["result"] for r in runs for a in (r.after or {})["actions"]]

    async def test_at_most_three_per_sender_per_hour(
        self,
        tenant: Tenant,
        app_runtime: Runtime,
        fake_tickets: FakeTickets,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        await self.setup_rule(tenant, app_runtime, monkeypatch)
        address = f"{tenant.subdomain}@customer.test"
        outcomes = []
        for _ in range(4):
            ticket = fake_tickets.add(tenant.workspace_id, customer_email=address.upper())
            await raise_event(app_runtime, created(tenant.workspace_id, ticket.id))
            outcomes += await self.results(app_runtime, ticket.id)
        assert outcomes[:3] == ["applied"] * 3
        assert outcomes[3].startswith("skipped: 3 automatic messages already sent")
        assert len(fake_tickets.done()) == 3
        other = fake_tickets.add(tenant.workspace_id, customer_email=f"x{address}")
        await raise_event(app_runtime, created(tenant.workspace_id, other.id))
        assert await self.results(app_runtime, other.id) == ["applied"]

    @pytest.mark.parametrize(
        ("values", "reason"),
        [
            ({"customer_email": "a@b.test", "sender_is_automated": True}, "automated (auto"),
            ({"customer_email": "MAILER-DAEMON@b.test"}, "automated sender"),
            ({"customer_email": "no-reply@b.test"}, "automated sender"),
            ({"customer_email": "bounces+123@b.test"}, "automated sender"),
            ({"customer_email": None}, "no customer address"),
        ],
    )
    async def test_never_to_automated_senders(
        self,
        tenant: Tenant,
        app_runtime: Runtime,
        fake_tickets: FakeTickets,
        monkeypatch: pytest.MonkeyPatch,
        values: dict[str, Any],
        reason: str,
    ) -> None:
        await self.setup_rule(tenant, app_runtime, monkeypatch)
        ticket = fake_tickets.add(tenant.workspace_id, **values)
        await raise_event(app_runtime, created(tenant.workspace_id, ticket.id))
        (result,) = await self.results(app_runtime, ticket.id)
        assert result.startswith("skipped:") and reason in result
        assert fake_tickets.calls == []
