"""Time-based rules: the bulk candidate query, the once-per-window ledger, several workers.

The tickets table belongs to another domain; these tests run in a scratch database holding
the tables the job needs and a `tickets` table with the columns of data-model.md.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.models import Activity
from enque.activity.service import Actor
from enque.agents.models import Agent, AgentWorkspace
from enque.automations import hooks
from enque.automations.engine import Operation, Rule, TicketFacts, evaluate, time_due
from enque.automations.executor import ActionContext
from enque.automations.models import Automation, AutomationRun, RoundRobinCursor
from enque.automations.timerules import TimeRulesReport, candidate_query, run_time_rules
from enque.core.db import Base, new_id, now
from enque.core.events import Event, emit
from enque.core.runtime import Runtime
from enque.teams.models import Team, TeamMember
from enque.workspaces.models import Workspace
from tests.conftest import BACKEND, make_database_url, settings_from

HOUR = 3600

TICKETS = Table(
    "tickets",
    MetaData(),
    Column("id", String(36), primary_key=True),
    Column("workspace_id", String(36), nullable=False),
    Column("subject", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False, default="Open"),
    Column("priority", String(16), nullable=False, default="Medium"),
    *(
        Column(f"{name}_id", String(36))
        for name in ("assignee", "team", "category", "mailbox", "company")
    ),
    Column("tags", JSON, nullable=False, default=list),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("last_customer_reply_at", BigInteger),
    Column("last_agent_reply_at", BigInteger),
    Column("deleted_at", BigInteger),
    Column("merged_into_ticket_id", String(36)),
)
NEEDED = [
    Workspace,
    Agent,
    AgentWorkspace,
    Team,
    TeamMember,
    Activity,
    Automation,
    AutomationRun,
    RoundRobinCursor,
]
FIELDS = {
    "set_status": "status",
    "set_priority": "priority",
    "set_assignee": "assignee_id",
    "set_team": "team_id",
    "set_category": "category_id",
}


class SqlTickets:
    """The tickets domain's loader and executor, over the scratch table."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.updates: list[list[str]] = []  # the tickets of each `change_tickets` call
        self.fail: set[str] = set()  # actions that raise after writing
        self.broken: set[str] = set()  # tickets whose update raises after writing

    async def load(
        self,
        session: AsyncSession,
        workspace_id: str,
        ticket_ids: Sequence[str],
        *,
        custom: bool = True,
    ) -> dict[str, TicketFacts]:
        stmt = select(TICKETS).where(
            TICKETS.c.id.in_(list(ticket_ids)),
            TICKETS.c.workspace_id == workspace_id,
            TICKETS.c.deleted_at.is_(None),
        )
        found = {}
        for row in (await session.execute(stmt)).mappings():
            values = {
                k: v for k, v in row.items() if k not in ("deleted_at", "merged_into_ticket_id")
            }
            found[row["id"]] = TicketFacts(**{**values, "tags": tuple(values["tags"])})
        return found

    async def _write(
        self, session: AsyncSession, workspace_id: str, ticket_id: str, actor: Actor, **changes: Any
    ) -> None:
        await session.execute(
            update(TICKETS).where(TICKETS.c.id == ticket_id).values(updated_at=now(), **changes)
        )
        emit(
            session,
            Event(
                "ticket.updated",
                workspace_id,
                {"id": ticket_id, "changes": {}},
                actor=actor.as_dict(),
            ),
        )

    async def change_tickets(
        self, session: AsyncSession, workspace_id: str, changes: Mapping[str, Sequence[Operation]]
    ) -> dict[str, list[str | None]]:
        self.updates.append(list(changes))
        for ticket_id, ops in changes.items():
            values: dict[str, Any] = {}
            for op in ops:
                self.calls.append((op.type, ticket_id, op.value))
                if op.type in FIELDS:
                    values[FIELDS[op.type]] = op.value
            actor = Actor("automation", ops[0].rule_id)
            await self._write(session, workspace_id, ticket_id, actor, **values)
            if ticket_id in self.broken:
                raise RuntimeError("the update broke after writing")
        return {ticket_id: [None] * len(ops) for ticket_id, ops in changes.items()}

    def __getattr__(self, action: str) -> Any:
        async def act(ctx: ActionContext, value: Any) -> None:
            self.calls.append((action, ctx.ticket_id, value))
            await self._write(ctx.session, ctx.workspace_id, ctx.ticket_id, ctx.actor)
            if action in self.fail:
                raise RuntimeError(f"{action} broke after writing")

        return act


@pytest.fixture(scope="module")
async def scratch(
    base_env: dict[str, str], data_dir: Any, worker_id_suffix: str
) -> AsyncIterator[Runtime]:
    url, cleanup = make_database_url(BACKEND, data_dir, f"enque_timerules_{worker_id_suffix}")
    runtime = Runtime.build(settings_from(base_env, database_url=url))
    async with runtime.db.write_engine.begin() as conn:
        tables = [model.__table__ for model in NEEDED]
        await conn.run_sync(lambda c: Base.metadata.create_all(c, tables=tables))
        await conn.run_sync(TICKETS.create)
    yield runtime
    await runtime.close()
    cleanup()


@pytest.fixture
def tickets(scratch: Runtime, monkeypatch: pytest.MonkeyPatch) -> SqlTickets:
    fake = SqlTickets()
    monkeypatch.setitem(scratch.services, "ticket_facts", fake.load)
    monkeypatch.setitem(scratch.services, "automation_executor", fake)
    return fake


@pytest.fixture
async def workspace(scratch: Runtime) -> AsyncIterator[str]:
    """A new workspace; its rules stop at the end of the test (the database is shared)."""
    async with scratch.db.transaction() as session:
        ws = Workspace(name="ws", subdomain=new_id())
        session.add(ws)
    yield ws.id
    async with scratch.db.transaction() as session:
        await session.execute(
            update(Automation).where(Automation.workspace_id == ws.id).values(is_active=False)
        )


@pytest.fixture
def events(scratch: Runtime) -> Any:
    seen: list[Event] = []

    async def capture(event: Event) -> None:
        seen.append(event)

    scratch.reactions.append(capture)
    yield seen
    scratch.reactions.remove(capture)


async def add_ticket(
    runtime: Runtime,
    workspace_id: str,
    *,
    age_h: float = 0,
    updated_h: float | None = None,
    **values: Any,
) -> str:
    moment = now()
    row = {
        "id": new_id(),
        "workspace_id": workspace_id,
        "created_at": moment - int(age_h * HOUR),
        "updated_at": moment - int((age_h if updated_h is None else updated_h) * HOUR),
        **values,
    }
    async with runtime.db.transaction() as session:
        await session.execute(insert(TICKETS).values(**row))
    return str(row["id"])


async def add_rule(
    runtime: Runtime,
    workspace_id: str,
    *,
    hours: float,
    field: str,
    conditions: list[Any],
    actions: list[Any],
    match: str = "all",
    **extra: Any,
) -> str:
    async with runtime.db.transaction() as session:
        rule = Automation(
            workspace_id=workspace_id,
            name="timed",
            trigger="time.elapsed",
            trigger_config={"hours": hours, "field": field},
            match=match,
            conditions=conditions,
            actions=actions,
            **extra,
        )
        session.add(rule)
    return rule.id


async def ticket(runtime: Runtime, ticket_id: str) -> dict[str, Any]:
    async with runtime.db.session(write=False) as session:
        row = (await session.execute(select(TICKETS).where(TICKETS.c.id == ticket_id))).mappings()
        return dict(row.one())


async def touch(runtime: Runtime, ticket_id: str, at: int, **values: Any) -> None:
    """A person changes the ticket at `at`."""
    async with runtime.db.transaction() as session:
        await session.execute(
            update(TICKETS).where(TICKETS.c.id == ticket_id).values(updated_at=at, **values)
        )


def cond(field: str, operator: str, value: Any) -> dict[str, Any]:
    return {"field": field, "operator": operator, "value": value}


async def test_closes_waiting_tickets_once(
    scratch: Runtime, tickets: SqlTickets, workspace: str, events: list[Event]
) -> None:
    rule_id = await add_rule(
        scratch,
        workspace,
        hours=72,
        field="updated",
        conditions=[cond("status", "is", "With User")],
        actions=[{"type": "set_status", "value": "Closed"}],
    )
    due = await add_ticket(scratch, workspace, age_h=100, updated_h=73, status="With User")
    await add_ticket(scratch, workspace, age_h=100, updated_h=71, status="With User")
    await add_ticket(scratch, workspace, age_h=100, updated_h=100, status="Open")
    await add_ticket(
        scratch, workspace, age_h=100, updated_h=80, status="With User", deleted_at=now()
    )
    await add_ticket(
        scratch, workspace, age_h=100, updated_h=80, status="With User", merged_into_ticket_id=due
    )
    async with scratch.db.transaction() as session:
        other = Workspace(name="other", subdomain=new_id())
        session.add(other)
    await add_ticket(scratch, other.id, age_h=100, updated_h=80, status="With User")

    report = await run_time_rules(scratch)
    assert (report.candidates, report.fired) == (1, 1)
    assert tickets.calls == [("set_status", due, "Closed")]
    assert (await ticket(scratch, due))["status"] == "Closed"
    assert [(e.depth, e.chain, e.actor) for e in events] == [
        (1, [rule_id], {"type": "automation", "id": rule_id})
    ]
    report = await run_time_rules(scratch)
    assert (report.candidates, report.fired) == (0, 0)
    async with scratch.db.session(write=False) as session:
        rule = await session.get(Automation, rule_id)
        assert rule is not None and rule.run_count == 1
        verbs = (
            await session.execute(
                select(Activity.verb, Activity.actor_id).where(Activity.subject_id == due)
            )
        ).all()
    assert verbs == [("automation.ran", rule_id)]


async def test_failed_action_leaves_no_trace(
    scratch: Runtime, tickets: SqlTickets, workspace: str, events: list[Event]
) -> None:
    """Its writes roll back to a savepoint and its events are dropped; the others stay."""
    await add_rule(
        scratch,
        workspace,
        hours=1,
        field="created",
        conditions=[],
        actions=[
            {"type": "set_status", "value": "Closed"},
            {"type": "add_note", "value": "Closed after a day of silence"},
        ],
    )
    tickets.fail.add("add_note")
    ticket_id = await add_ticket(scratch, workspace, age_h=2)
    assert (await run_time_rules(scratch)).fired == 1
    row = await ticket(scratch, ticket_id)
    assert row["status"] == "Closed"
    assert len(events) == 1
    async with scratch.db.session(write=False) as session:
        (run,) = (
            (await session.execute(select(Activity).where(Activity.subject_id == ticket_id)))
            .scalars()
            .all()
        )
    assert run.after is not None
    assert [(a["type"], a["result"]) for a in run.after["actions"]] == [
        ("set_status", "applied"),
        ("add_note", "failed: error"),
    ]


async def test_a_batch_is_one_transaction_and_one_update_per_ticket(
    scratch: Runtime, tickets: SqlTickets, workspace: str, events: list[Event]
) -> None:
    """Due tickets go `batch` at a time, each batch's changes in one executor call; the tick
    goes on until none is left."""
    await add_rule(
        scratch,
        workspace,
        hours=1,
        field="created",
        conditions=[cond("status", "is", "Open")],
        actions=[
            {"type": "set_status", "value": "Closed"},
            {"type": "set_priority", "value": "Low"},
        ],
    )
    due = [await add_ticket(scratch, workspace, age_h=2 + n) for n in range(5)]
    report = await run_time_rules(scratch, batch=2)
    assert (report.candidates, report.fired) == (5, 5)
    oldest_first = list(reversed(due))
    assert tickets.updates == [oldest_first[0:2], oldest_first[2:4], oldest_first[4:]]
    assert len(events) == 5
    for ticket_id in due:
        row = await ticket(scratch, ticket_id)
        assert (row["status"], row["priority"]) == ("Closed", "Low")
    async with scratch.db.session(write=False) as session:
        rule = (
            await session.execute(select(Automation).where(Automation.workspace_id == workspace))
        ).scalar_one()
    assert rule.run_count == 5
    assert (await run_time_rules(scratch, batch=2)).candidates == 0


async def test_a_broken_ticket_holds_back_no_other(
    scratch: Runtime, tickets: SqlTickets, workspace: str, events: list[Event]
) -> None:
    await add_rule(
        scratch,
        workspace,
        hours=1,
        field="created",
        conditions=[],
        actions=[{"type": "set_status", "value": "Closed"}],
    )
    ids = [await add_ticket(scratch, workspace, age_h=2) for _ in range(3)]
    tickets.broken.add(ids[1])
    assert (await run_time_rules(scratch)).fired == 3
    statuses = [(await ticket(scratch, i))["status"] for i in ids]
    assert statuses == ["Closed", "Open", "Closed"]
    assert sorted(e.payload["id"] for e in events) == sorted([ids[0], ids[2]])
    async with scratch.db.session(write=False) as session:
        runs = (
            await session.execute(
                select(Activity.subject_id, Activity.after).where(Activity.subject_id.in_(ids))
            )
        ).all()
    results = {subject: after["actions"][0]["result"] for subject, after in runs}
    assert results == {ids[0]: "applied", ids[1]: "failed: error", ids[2]: "applied"}


async def test_fires_once_per_window(scratch: Runtime, tickets: SqlTickets, workspace: str) -> None:
    """Unread for 2 h → High: once, even if someone lowers the priority again."""
    await add_rule(
        scratch,
        workspace,
        hours=2,
        field="created",
        conditions=[cond("status", "is", "Unread")],
        actions=[
            {"type": "set_priority", "value": "High"},
            {"type": "add_note", "value": "Nobody has opened this"},
        ],
    )
    fresh = await add_ticket(scratch, workspace, age_h=1, status="Unread")
    old = await add_ticket(scratch, workspace, age_h=3, status="Unread")
    assert (await run_time_rules(scratch)).fired == 1
    await touch(scratch, old, now() + 1, priority="Low")
    report = await run_time_rules(scratch, at=now() + 2 * HOUR)
    assert report.fired == 1  # only the fresh one, now due
    assert [(a, t) for a, t, _ in tickets.calls] == [
        ("set_priority", old),
        ("add_note", old),
        ("set_priority", fresh),
        ("add_note", fresh),
    ]
    assert (await ticket(scratch, old))["priority"] == "Low"


async def test_own_changes_do_not_open_a_new_window(
    scratch: Runtime, tickets: SqlTickets, workspace: str
) -> None:
    """Open for 24 h since the last update → tag: the tag update is not a new 'last update'."""
    await add_rule(
        scratch,
        workspace,
        hours=24,
        field="updated",
        conditions=[cond("status", "is", "Open")],
        actions=[{"type": "add_tag", "value": "stale"}],
    )
    stale = await add_ticket(scratch, workspace, age_h=30, updated_h=25)
    start = now()
    assert (await run_time_rules(scratch, at=start)).fired == 1
    assert (await run_time_rules(scratch, at=start + 48 * HOUR)).fired == 0
    await touch(scratch, stale, start + HOUR)  # a person answers
    assert (await run_time_rules(scratch, at=start + 20 * HOUR)).fired == 0
    assert (await run_time_rules(scratch, at=start + 25 * HOUR + 1)).fired == 1
    assert [a for a, _, _ in tickets.calls] == ["add_tag", "add_tag"]


async def test_text_conditions_are_evaluated_once_per_version(
    scratch: Runtime, tickets: SqlTickets, workspace: str
) -> None:
    await add_rule(
        scratch,
        workspace,
        hours=1,
        field="created",
        conditions=[cond("subject", "contains", "refund"), cond("priority", "is_not", "Critical")],
        actions=[{"type": "add_tag", "value": "refund"}],
    )
    hello = await add_ticket(scratch, workspace, age_h=2, subject="Hello")
    await add_ticket(scratch, workspace, age_h=2, subject="Refund!", priority="Critical")
    first = await run_time_rules(scratch)
    assert (first.candidates, first.unmatched, first.fired) == (1, 1, 0)
    again = await run_time_rules(scratch)
    assert again.candidates == 0  # the unchanged ticket is not loaded again
    later = now() + 10
    await touch(scratch, hello, later, subject="About my REFUND")
    report = await run_time_rules(scratch, at=later)
    assert (report.candidates, report.fired) == (1, 1)
    assert tickets.calls == [("add_tag", hello, "refund")]


async def test_any_rule_with_time_and_text(
    scratch: Runtime, tickets: SqlTickets, workspace: str
) -> None:
    await add_rule(
        scratch,
        workspace,
        hours=1,
        field="created",
        match="any",
        conditions=[
            cond("hours_since_customer_reply", "gt", 48),
            cond("subject", "starts_with", "[vip]"),
        ],
        actions=[{"type": "set_priority", "value": "High"}],
    )
    moment = now()
    vip = await add_ticket(scratch, workspace, age_h=2, subject="[VIP] help")
    waiting = await add_ticket(
        scratch, workspace, age_h=2, subject="help", last_customer_reply_at=moment - 47 * HOUR
    )
    assert (await run_time_rules(scratch, at=moment)).fired == 1
    assert (await run_time_rules(scratch, at=moment + 30)).candidates == 0
    # time alone makes the other one match later, without any change to the ticket
    assert (await run_time_rules(scratch, at=moment + 2 * HOUR)).fired == 1
    assert [t for _, t, _ in tickets.calls] == [vip, waiting]


async def test_inactive_and_deleted_rules_do_not_run(
    scratch: Runtime, tickets: SqlTickets, workspace: str
) -> None:
    actions = [{"type": "add_tag", "value": "x"}]
    await add_rule(
        scratch,
        workspace,
        hours=1,
        field="created",
        conditions=[],
        actions=actions,
        is_active=False,
    )
    await add_rule(
        scratch,
        workspace,
        hours=1,
        field="created",
        conditions=[],
        actions=actions,
        deleted_at=now(),
    )
    await add_ticket(scratch, workspace, age_h=5)
    assert (await run_time_rules(scratch)).rules == 0
    assert tickets.calls == []


async def test_several_workers_fire_each_window_once(
    scratch: Runtime, tickets: SqlTickets, workspace: str
) -> None:
    await add_rule(
        scratch,
        workspace,
        hours=1,
        field="created",
        conditions=[],
        actions=[{"type": "add_tag", "value": "late"}],
    )
    ids = {await add_ticket(scratch, workspace, age_h=2) for _ in range(20)}
    second = Runtime.build(scratch.settings)
    second.services.update(scratch.services)
    try:
        reports = await asyncio.gather(*(run_time_rules(rt) for rt in (scratch, second, scratch)))
    finally:
        await second.close()
    assert sum(r.fired for r in reports) == 20
    assert sorted(t for _, t, _ in tickets.calls) == sorted(ids)
    async with scratch.db.session(write=False) as session:
        count = (
            await session.execute(
                select(func.count())
                .select_from(AutomationRun)
                .where(AutomationRun.ticket_id.in_(ids), AutomationRun.matched.is_(True))
            )
        ).scalar_one()
    assert count == 20


async def test_query_agrees_with_the_engine(scratch: Runtime, workspace: str) -> None:
    """For every condition SQL decides, the candidates are exactly what the engine matches."""
    rng = random.Random(7)
    moment = now()
    ids = ["a1", "a2", None]
    ages = [0.5, 1, 3, 10, 50, 100]
    for _ in range(60):
        await add_ticket(
            scratch,
            workspace,
            age_h=rng.choice(ages) + 100,
            updated_h=rng.choice(ages),
            status=rng.choice(["Unread", "Open", "With User", "Closed"]),
            priority=rng.choice(["Low", "Medium", "High", "Critical"]),
            assignee_id=rng.choice(ids),
            team_id=rng.choice(ids),
            last_customer_reply_at=rng.choice([None, moment - int(rng.choice(ages) * HOUR)]),
        )
    conditions = [
        cond("status", "is", "Open"),
        cond("status", "is_not", "Closed"),
        cond("priority", "gt", "Medium"),
        cond("priority", "lt", "High"),
        cond("priority", "is", "Low"),
        cond("assignee", "is", None),
        cond("assignee", "is_not", "a1"),
        cond("team", "is", "a2"),
        cond("team", "is_not", None),
        cond("hours_since_updated", "gt", 3),
        cond("hours_since_customer_reply", "lt", 10),
        cond("hours_since_created", "gt", 103),
    ]
    async with scratch.db.session(write=False) as session:
        rows = (
            (await session.execute(select(TICKETS.c.id).where(TICKETS.c.workspace_id == workspace)))
            .scalars()
            .all()
        )
        loader = SqlTickets()
        facts = list((await loader.load(session, workspace, rows)).values())
        for n in range(40):
            picked = rng.sample(conditions, rng.randint(0, 3))
            rule = Rule.of(
                Automation(
                    id=f"probe-{n}",
                    name="probe",
                    trigger="time.elapsed",
                    match=rng.choice(["all", "any"]),
                    conditions=picked,
                    actions=[],
                    trigger_config={
                        "hours": rng.choice([1, 5, 20]),
                        "field": rng.choice(["updated", "customer_reply"]),
                    },
                )
            )
            query = candidate_query(rule, workspace_id=workspace, now=moment, limit=1000)
            found = set((await session.execute(query)).scalars())
            expected = {
                f.id
                for f in facts
                if f is not None and time_due(rule, f, moment) and evaluate(rule, f, moment).matched
            }
            assert found == expected, (rule.match, picked, rule.trigger_config)


async def test_job_is_registered_with_the_scheduler(
    scratch: Runtime, tickets: SqlTickets, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered: list[tuple[str, int, Any]] = []

    class Scheduler:
        def register(self, name: str, interval: int, job: Any) -> None:
            registered.append((name, interval, job))

    monkeypatch.setitem(scratch.services, "scheduler", Scheduler())
    await hooks.on_startup(scratch)
    ((name, interval, job),) = registered
    assert (name, interval) == ("automations.time_rules", 60)
    report = await job()
    assert isinstance(report, TimeRulesReport) and report.fired == 0
